"""Who can reach what, by every door: each URL of the project for each role, the API with tokens,
state-changing POSTs and the WebSocket. A URL that is not in the matrix fails the test, so a new
page cannot ship without a decision about who may see it.
"""

import asyncio

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from runs import services
from runs.models import Run, RunStatus
from runs.routing import websocket_urlpatterns
from scripts_app.models import ApiToken
from tests.matrix import ROLES, World, all_url_patterns

# (name, route): statuses of a GET for anonymous, admin, engineer, ops, viewer, outsider.
# Objects in the URLs: the `hello` script and a run of it by engineer on staging (see tests/matrix.py).
MATRIX = {
    ("home", ""): "302 302 302 302 302 302",
    ("tools", "tools/"): "302 200 200 200 200 200",
    ("script_detail", "scripts/<slug:slug>/"): "302 200 200 200 200 404",
    ("run_list", "runs/"): "302 200 200 200 200 200",
    ("run_detail", "runs/<int:run_id>/"): "302 200 200 200 200 404",
    ("run_log_download", "runs/<int:run_id>/log.txt"): "302 200 200 200 200 404",
    ("run_cancel", "runs/<int:run_id>/cancel/"): "302 405 405 405 405 405",
    ("run_controls", "runs/<int:run_id>/controls/"): "302 405 405 405 405 405",
    ("run_notify_me", "runs/<int:run_id>/notify-me/"): "302 405 405 405 405 405",
    ("notification_settings", "notifications/"): "302 200 200 200 200 200",
    ("run_resume", "runs/<int:run_id>/resume-from-checkpoint/"): "302 405 405 405 405 405",
    ("api_script_list", "api/scripts/"): "401 200 200 200 200 200",
    ("api_script_detail", "api/scripts/<slug:slug>/"): "401 200 200 200 200 404",
    ("api_run_create", "api/runs/"): "401 405 405 405 405 405",
    ("api_run_detail", "api/runs/<int:run_id>/"): "401 200 200 200 200 404",
    ("api_run_log", "api/runs/<int:run_id>/log/"): "401 200 200 200 200 404",
    ("api_run_cancel", "api/runs/<int:run_id>/cancel/"): "401 405 405 405 405 405",
    ("api_run_pause", "api/runs/<int:run_id>/pause/"): "401 405 405 405 405 405",
    ("api_run_resume", "api/runs/<int:run_id>/resume/"): "401 405 405 405 405 405",
    ("api_run_resume_from_checkpoint", "api/runs/<int:run_id>/resume-from-checkpoint/"): "401 405 405 405 405 405",
    ("api_schema", "api/schema/"): "401 200 200 200 200 200",
    # The approval request: ops asked to run hello on production; anyone else who may run it there
    # approves (admin, engineer); viewers see it as they see the run; the link was sent to engineer.
    ("approval_inbox", "approvals/"): "302 200 200 200 200 200",
    ("approval_detail", "approvals/<int:request_id>/"): "302 200 200 200 200 404",
    ("approval_decide", "approvals/<int:request_id>/decide/"): "302 405 405 405 405 405",
    ("approval_withdraw", "approvals/<int:request_id>/withdraw/"): "302 405 405 405 405 405",
    ("approval_link", "approvals/link/<str:token>/"): "302 403 200 403 403 403",
    ("api_approval_list", "api/approvals/"): "401 200 200 200 200 200",
    ("api_approval_approve", "api/approvals/<int:request_id>/approve/"): "401 405 405 405 405 405",
    ("api_approval_reject", "api/approvals/<int:request_id>/reject/"): "401 405 405 405 405 405",
    ("account_login", "accounts/login/"): "200 302 302 302 302 302",
    ("account_logout", "accounts/logout/"): "302 200 200 200 200 200",
    ("account_inactive", "accounts/inactive/"): "200 200 200 200 200 200",
    ("account_signup", "accounts/signup/"): "200 302 302 302 302 302",
    ("account_reauthenticate", "accounts/reauthenticate/"): "302 200 200 200 200 200",
    ("account_email", "accounts/email/"): "302 200 200 200 200 200",
    ("account_email_verification_sent", "accounts/confirm-email/"): "200 200 200 200 200 200",
    ("account_change_password", "accounts/password/change/"): "302 200 200 200 200 200",
    ("account_set_password", "accounts/password/set/"): "302 302 302 302 302 302",
    ("account_reset_password", "accounts/password/reset/"): "200 200 200 200 200 200",
    ("account_confirm_login_code", "accounts/login/code/confirm/"): "302 302 302 302 302 302",
    ("account_confirm_email", r"accounts/^confirm-email/(?P<key>[-:\w]+)/$"): "200 200 200 200 200 200",
    ("account_reset_password_from_key_done", "accounts/password/reset/key/done/"): "200 200 200 200 200 200",
    ("account_reset_password_from_key", "accounts/^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$"): "200 200 200 200 200 200",
    ("account_reset_password_done", "accounts/password/reset/done/"): "200 200 200 200 200 200",
    ("admin:index", "admin/"): "302 200 200 302 302 302",
    ("admin:login", "admin/login/"): "200 302 302 200 200 200",
    ("admin:logout", "admin/logout/"): "302 405 405 302 302 302",
    ("admin:password_change", "admin/password_change/"): "302 200 200 302 302 302",
    ("admin:password_change_done", "admin/password_change/done/"): "302 200 200 302 302 302",
    ("admin:autocomplete", "admin/autocomplete/"): "302 403 403 302 302 302",
    ("admin:jsi18n", "admin/jsi18n/"): "302 200 200 302 302 302",
    ("admin:view_on_site", "admin/r/<path:content_type_id>/<path:object_id>/"): "302 404 404 302 302 302",
    ("admin:auth_group_changelist", "admin/auth/group/"): "302 200 403 302 302 302",
    ("admin:auth_group_add", "admin/auth/group/add/"): "302 200 403 302 302 302",
    ("admin:auth_group_history", "admin/auth/group/<path:object_id>/history/"): "302 200 403 302 302 302",
    ("admin:auth_group_delete", "admin/auth/group/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:auth_group_change", "admin/auth/group/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/auth/group/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:auth_user_password_change", "admin/auth/user/<id>/password/"): "302 200 403 302 302 302",
    ("admin:auth_user_changelist", "admin/auth/user/"): "302 200 403 302 302 302",
    ("admin:auth_user_add", "admin/auth/user/add/"): "302 200 403 302 302 302",
    ("admin:auth_user_history", "admin/auth/user/<path:object_id>/history/"): "302 200 403 302 302 302",
    ("admin:auth_user_delete", "admin/auth/user/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:auth_user_change", "admin/auth/user/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/auth/user/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:account_emailaddress_changelist", "admin/account/emailaddress/"): "302 200 403 302 302 302",
    ("admin:account_emailaddress_add", "admin/account/emailaddress/add/"): "302 200 403 302 302 302",
    ("admin:account_emailaddress_history", "admin/account/emailaddress/<path:object_id>/history/"): "302 200 403 302 302 302",
    ("admin:account_emailaddress_delete", "admin/account/emailaddress/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:account_emailaddress_change", "admin/account/emailaddress/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/account/emailaddress/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:audit_auditevent_export", "admin/audit/auditevent/export.csv"): "302 200 403 302 302 302",
    ("admin:audit_auditevent_changelist", "admin/audit/auditevent/"): "302 200 403 302 302 302",
    ("admin:audit_auditevent_add", "admin/audit/auditevent/add/"): "302 403 403 302 302 302",
    ("admin:audit_auditevent_history", "admin/audit/auditevent/<path:object_id>/history/"): "302 200 403 302 302 302",
    ("admin:audit_auditevent_delete", "admin/audit/auditevent/<path:object_id>/delete/"): "302 403 403 302 302 302",
    ("admin:audit_auditevent_change", "admin/audit/auditevent/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/audit/auditevent/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:scripts_app_environment_permissions", "admin/scripts_app/environment/<object_pk>/permissions/"): "302 200 302 302 302 302",
    ("admin:scripts_app_environment_permissions_manage_user", "admin/scripts_app/environment/<object_pk>/permissions/user-manage/<user_id>/"): "302 200 302 302 302 302",
    ("admin:scripts_app_environment_permissions_manage_group", "admin/scripts_app/environment/<object_pk>/permissions/group-manage/<group_id>/"): "302 200 302 302 302 302",
    ("admin:scripts_app_environment_changelist", "admin/scripts_app/environment/"): "302 200 200 302 302 302",
    ("admin:scripts_app_environment_add", "admin/scripts_app/environment/add/"): "302 200 403 302 302 302",
    ("admin:scripts_app_environment_history", "admin/scripts_app/environment/<path:object_id>/history/"): "302 200 200 302 302 302",
    ("admin:scripts_app_environment_delete", "admin/scripts_app/environment/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:scripts_app_environment_change", "admin/scripts_app/environment/<path:object_id>/change/"): "302 200 200 302 302 302",
    ("admin:None", "admin/scripts_app/environment/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:scripts_app_script_permissions", "admin/scripts_app/script/<object_pk>/permissions/"): "302 200 302 302 302 302",
    ("admin:scripts_app_script_permissions_manage_user", "admin/scripts_app/script/<object_pk>/permissions/user-manage/<user_id>/"): "302 200 302 302 302 302",
    ("admin:scripts_app_script_permissions_manage_group", "admin/scripts_app/script/<object_pk>/permissions/group-manage/<group_id>/"): "302 200 302 302 302 302",
    ("admin:scripts_app_script_changelist", "admin/scripts_app/script/"): "302 200 200 302 302 302",
    ("admin:scripts_app_script_add", "admin/scripts_app/script/add/"): "302 200 200 302 302 302",
    ("admin:scripts_app_script_history", "admin/scripts_app/script/<path:object_id>/history/"): "302 200 200 302 302 302",
    ("admin:scripts_app_script_delete", "admin/scripts_app/script/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:scripts_app_script_change", "admin/scripts_app/script/<path:object_id>/change/"): "302 200 200 302 302 302",
    ("admin:None", "admin/scripts_app/script/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:scripts_app_scriptversion_changelist", "admin/scripts_app/scriptversion/"): "302 200 200 302 302 302",
    ("admin:scripts_app_scriptversion_add", "admin/scripts_app/scriptversion/add/"): "302 403 403 302 302 302",
    ("admin:scripts_app_scriptversion_history", "admin/scripts_app/scriptversion/<path:object_id>/history/"): "302 200 200 302 302 302",
    ("admin:scripts_app_scriptversion_delete", "admin/scripts_app/scriptversion/<path:object_id>/delete/"): "302 403 403 302 302 302",
    ("admin:scripts_app_scriptversion_change", "admin/scripts_app/scriptversion/<path:object_id>/change/"): "302 200 200 302 302 302",
    ("admin:None", "admin/scripts_app/scriptversion/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:scripts_app_secret_changelist", "admin/scripts_app/secret/"): "302 200 403 302 302 302",
    ("admin:scripts_app_secret_add", "admin/scripts_app/secret/add/"): "302 200 403 302 302 302",
    ("admin:scripts_app_secret_history", "admin/scripts_app/secret/<path:object_id>/history/"): "302 200 403 302 302 302",
    ("admin:scripts_app_secret_delete", "admin/scripts_app/secret/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:scripts_app_secret_change", "admin/scripts_app/secret/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/scripts_app/secret/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:scripts_app_apitoken_changelist", "admin/scripts_app/apitoken/"): "302 200 403 302 302 302",
    ("admin:scripts_app_apitoken_add", "admin/scripts_app/apitoken/add/"): "302 200 403 302 302 302",
    ("admin:scripts_app_apitoken_history", "admin/scripts_app/apitoken/<path:object_id>/history/"): "302 200 302 302 302 302",
    ("admin:scripts_app_apitoken_delete", "admin/scripts_app/apitoken/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:scripts_app_apitoken_change", "admin/scripts_app/apitoken/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/scripts_app/apitoken/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:runs_run_changelist", "admin/runs/run/"): "302 200 200 302 302 302",
    ("admin:runs_run_add", "admin/runs/run/add/"): "302 403 403 302 302 302",
    ("admin:runs_run_history", "admin/runs/run/<path:object_id>/history/"): "302 200 200 302 302 302",
    ("admin:runs_run_delete", "admin/runs/run/<path:object_id>/delete/"): "302 403 403 302 302 302",
    ("admin:runs_run_change", "admin/runs/run/<path:object_id>/change/"): "302 200 200 302 302 302",
    ("admin:None", "admin/runs/run/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:None", "admin/approvals/approvalrequest/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:approvals_approvalrequest_changelist", "admin/approvals/approvalrequest/"): "302 200 200 302 302 302",
    ("admin:approvals_approvalrequest_add", "admin/approvals/approvalrequest/add/"): "302 403 403 302 302 302",
    ("admin:approvals_approvalrequest_history", "admin/approvals/approvalrequest/<path:object_id>/history/"): "302 200 200 302 302 302",
    ("admin:approvals_approvalrequest_delete", "admin/approvals/approvalrequest/<path:object_id>/delete/"): "302 403 403 302 302 302",
    ("admin:approvals_approvalrequest_change", "admin/approvals/approvalrequest/<path:object_id>/change/"): "302 200 200 302 302 302",
    # Webhooks and deliveries: admins only (engineers hold no permission on them).
    ("admin:runs_webhook_changelist", "admin/runs/webhook/"): "302 200 403 302 302 302",
    ("admin:runs_webhook_add", "admin/runs/webhook/add/"): "302 200 403 302 302 302",
    ("admin:runs_webhook_history", "admin/runs/webhook/<path:object_id>/history/"): "302 200 403 302 302 302",
    ("admin:runs_webhook_delete", "admin/runs/webhook/<path:object_id>/delete/"): "302 200 403 302 302 302",
    ("admin:runs_webhook_change", "admin/runs/webhook/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/runs/webhook/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:runs_delivery_changelist", "admin/runs/delivery/"): "302 200 403 302 302 302",
    ("admin:runs_delivery_add", "admin/runs/delivery/add/"): "302 403 403 302 302 302",
    ("admin:runs_delivery_history", "admin/runs/delivery/<path:object_id>/history/"): "302 200 403 302 302 302",
    ("admin:runs_delivery_delete", "admin/runs/delivery/<path:object_id>/delete/"): "302 403 403 302 302 302",
    ("admin:runs_delivery_change", "admin/runs/delivery/<path:object_id>/change/"): "302 200 403 302 302 302",
    ("admin:None", "admin/runs/delivery/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:runs_logchunk_changelist", "admin/runs/logchunk/"): "302 200 200 302 302 302",
    ("admin:runs_logchunk_add", "admin/runs/logchunk/add/"): "302 403 403 302 302 302",
    ("admin:runs_logchunk_history", "admin/runs/logchunk/<path:object_id>/history/"): "302 200 200 302 302 302",
    ("admin:runs_logchunk_delete", "admin/runs/logchunk/<path:object_id>/delete/"): "302 403 403 302 302 302",
    ("admin:runs_logchunk_change", "admin/runs/logchunk/<path:object_id>/change/"): "302 200 200 302 302 302",
    ("admin:None", "admin/runs/logchunk/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:app_list", "admin/^(?P<app_label>auth|account|audit|scripts_app|ui_builder|runs|approvals)/$"): "302 200 200 302 302 302",
    # Forms: engineers may change every script, so they build every script's form.
    ("admin:ui_builder_formdefinition_changelist", "admin/ui_builder/formdefinition/"): "302 200 200 302 302 302",
    ("admin:ui_builder_formdefinition_add", "admin/ui_builder/formdefinition/add/"): "302 200 200 302 302 302",
    ("admin:ui_builder_formdefinition_history", "admin/ui_builder/formdefinition/<path:object_id>/history/"): "302 200 200 302 302 302",
    ("admin:ui_builder_formdefinition_delete", "admin/ui_builder/formdefinition/<path:object_id>/delete/"): "302 200 200 302 302 302",
    ("admin:ui_builder_formdefinition_change", "admin/ui_builder/formdefinition/<path:object_id>/change/"): "302 200 200 302 302 302",
    ("admin:ui_builder_formdefinition_preview", "admin/ui_builder/formdefinition/preview/"): "302 403 403 302 302 302",
    ("admin:ui_builder_formdefinition_import", "admin/ui_builder/formdefinition/import/"): "302 200 200 302 302 302",
    ("admin:ui_builder_sync", "admin/ui_builder/formdefinition/sync/"): "302 200 200 302 302 302",
    ("admin:ui_builder_formdefinition_export", "admin/ui_builder/formdefinition/<int:pk>/export.json"): "302 200 200 302 302 302",
    ("admin:None", "admin/ui_builder/formdefinition/<path:object_id>/"): "302 302 302 302 302 302",
    ("admin:None", "admin/(?P<url>.*)$"): "302 404 404 302 302 302",}

# The restricted finance script and its run: engineering's rights on all scripts do not reach them.
RESTRICTED = {
    "/scripts/month-end-report/": "302 200 404 404 404 200",
    "/runs/{finance_run}/": "302 200 404 404 404 200",
    "/runs/{finance_run}/log.txt": "302 200 404 404 404 200",
    "/api/scripts/month-end-report/": "401 200 404 404 404 200",
    "/api/runs/{finance_run}/": "401 200 404 404 404 200",
    "/api/runs/{finance_run}/log/": "401 200 404 404 404 200",
    "/admin/scripts_app/script/{month_end}/change/": "302 200 302 302 302 302",
    "/admin/runs/run/{finance_run}/change/": "302 200 302 302 302 302",
}


@pytest.fixture
def world(db):
    return World()


def client_for(world, role):
    client = Client()
    if role != "anonymous":
        client.force_login(world.users[role])
    return client


def expected(statuses):
    return dict(zip(ROLES, map(int, statuses.split()), strict=True))


def test_every_url_pattern_is_in_the_matrix():
    patterns = set(all_url_patterns())
    assert patterns - set(MATRIX) == set(), "new URL patterns need a row in MATRIX"
    assert set(MATRIX) - patterns == set(), "MATRIX lists URL patterns that no longer exist"


def test_get_every_url_as_every_role(world):
    clients = {role: client_for(world, role) for role in ROLES}
    failures = []
    for (name, route), statuses in MATRIX.items():
        url = world.url(name, route)
        for role, status in expected(statuses).items():
            got = clients[role].get(url).status_code
            if got != status:
                failures.append(f"{role} GET {url} ({name}): expected {status}, got {got}")
    assert failures == []


def test_anonymous_redirects_go_to_sign_in(world):
    client = Client()
    for url in ("/tools/", f"/runs/{world.hello_run.pk}/", "/scripts/hello/"):
        assert client.get(url)["Location"].startswith("/accounts/login/?next=")
    assert client.get("/admin/scripts_app/script/")["Location"].startswith("/admin/login/")


def test_restricted_scripts_are_seen_only_by_their_team(world):
    clients = {role: client_for(world, role) for role in ROLES}
    failures = []
    for template, statuses in RESTRICTED.items():
        url = template.format(finance_run=world.finance_run.pk, month_end=world.month_end.pk)
        for role, status in expected(statuses).items():
            got = clients[role].get(url).status_code
            if got != status:
                failures.append(f"{role} GET {url}: expected {status}, got {got}")
    assert failures == []
    engineer_tools = clients["engineer"].get("/tools/").content.decode()
    assert "Hello" in engineer_tools and "Month-end report" not in engineer_tools
    outsider_tools = clients["outsider"].get("/tools/").content.decode()
    assert "Month-end report" in outsider_tools and "Hello" not in outsider_tools
    runs_seen = clients["engineer"].get("/runs/").context["runs"]
    assert world.finance_run not in runs_seen and world.hello_run in runs_seen


def test_api_with_tokens_matches_the_matrix(world):
    tokens = {role: ApiToken.issue(world.users[role])[1] for role in ROLES if role != "anonymous"}
    failures = []
    for (name, route), statuses in MATRIX.items():
        if not name.startswith("api_"):
            continue
        url = world.url(name, route)
        for role, status in expected(statuses).items():
            headers = {"HTTP_AUTHORIZATION": f"Bearer {tokens[role]}"} if role in tokens else {}
            got = Client().get(url, **headers).status_code
            if got != status:
                failures.append(f"{role} GET {url} with a token: expected {status}, got {got}")
    assert failures == []


def token_headers(world, role):
    if role == "anonymous":
        return {}
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(world.users[role])[1]}"}


def fresh_hello_run(world):
    return services.request_run(world.users["engineer"], world.hello, world.staging, {"name": "x"})


@pytest.mark.parametrize("role, status, cancelled", [
    ("anonymous", 302, False), ("admin", 302, True), ("engineer", 302, True), ("ops", 403, False),
    ("viewer", 403, False), ("outsider", 404, False),
])
def test_cancel_from_the_page(world, role, status, cancelled):
    run = fresh_hello_run(world)
    assert client_for(world, role).post(f"/runs/{run.pk}/cancel/").status_code == status
    assert (Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED) is cancelled


@pytest.mark.parametrize("role, status, cancelled", [
    ("anonymous", 401, False), ("admin", 202, True), ("engineer", 202, True), ("ops", 403, False),
    ("viewer", 403, False), ("outsider", 404, False),
])
def test_cancel_through_the_api(world, role, status, cancelled):
    run = fresh_hello_run(world)
    headers = token_headers(world, role)
    assert Client().post(f"/api/runs/{run.pk}/cancel/", **headers).status_code == status
    assert (Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED) is cancelled


@pytest.mark.parametrize("role, environment, status", [
    ("anonymous", "staging", 401), ("admin", "staging", 201), ("engineer", "production", 201),
    ("ops", "production", 201), ("ops", "staging", 403), ("viewer", "staging", 403),
    ("outsider", "staging", 400),
])
def test_start_through_the_api(world, role, environment, status):
    before = Run.objects.count()
    headers = token_headers(world, role)
    response = Client().post("/api/runs/", {"script": "hello", "environment": environment, "reason": "matrix",
                                            "params": {"name": "x"}},
                             content_type="application/json", **headers)
    assert response.status_code == status
    assert Run.objects.count() == before + (1 if status == 201 else 0)


@pytest.mark.parametrize("role, environment, status", [
    ("anonymous", "staging", 302), ("admin", "staging", 302), ("engineer", "staging", 302),
    ("ops", "production", 302), ("ops", "staging", 400), ("viewer", "staging", 400),
    ("outsider", "staging", 404),
])
def test_start_from_the_form_including_forged_posts(world, role, environment, status):
    """ops may use production only; a POST naming staging (forged: it is not offered) starts nothing."""
    from scripts_app.models import Environment

    before = Run.objects.count()
    env = Environment.objects.get(slug=environment)
    response = client_for(world, role).post("/scripts/hello/", {"environment": env.pk, "p-name": "x",
                                                                "reason": "matrix", "confirmed": "yes"})
    assert response.status_code == status
    started = status == 302 and role != "anonymous"
    assert Run.objects.count() == before + (1 if started else 0)


@pytest.mark.django_db(transaction=True)
def test_websocket_as_every_role(world):
    expected_accept = {"anonymous": False, "admin": True, "engineer": True, "ops": True, "viewer": True,
                       "outsider": False}

    async def connect(user):
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runs/{world.hello_run.pk}/")
        comm.scope["user"] = user
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    for role, accept in expected_accept.items():
        user = AnonymousUser() if role == "anonymous" else world.users[role]
        assert asyncio.run(connect(user)) is accept, role
