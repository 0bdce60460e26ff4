"""Server-rendered pages, the admin and settings."""

import os
import subprocess
import sys

import pytest
from django.db import connection
from guardian.shortcuts import assign_perm

from runs import services
from runs.models import LogChunk, Run, RunStatus
from scripts_app.models import Script, Secret
from tests.conftest import PASSWORD, ROOT, download_log, grant_runner


@pytest.fixture
def hello(make_script, staging, production):
    return make_script("print('hello')\n", slug="hello", environments=[staging, production])


@pytest.fixture
def signed_in(client, engineer):
    client.force_login(engineer)
    return client


@pytest.mark.django_db
def test_pages_need_sign_in(client, hello, engineer, staging):
    run = services.request_run(engineer, hello, staging, {})
    for url in ("/tools/", "/scripts/hello/", "/runs/", f"/runs/{run.pk}/", f"/runs/{run.pk}/log.txt"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


@pytest.mark.django_db
def test_sign_in_with_a_password_lands_on_tools(client, engineer, hello):
    from django.test import Client

    response = client.post("/accounts/login/", {"login": "engineer", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/tools/"
    assert b"Hello" in response.content
    bad = Client().post("/accounts/login/", {"login": "engineer", "password": "wrong"})
    assert bad.status_code == 200 and b"not correct" in bad.content


@pytest.mark.django_db
def test_tools_lists_only_visible_scripts_and_searches(client, make_user, hello, make_script):
    make_script("print(1)\n", slug="secret-tool")
    ops = make_user("ops")
    assign_perm("scripts_app.view_script", ops, hello)
    client.force_login(ops)
    page = client.get("/tools/").content.decode()
    assert "Hello" in page and "Secret-Tool" not in page
    assert client.get("/scripts/secret-tool/").status_code == 404
    assert "No script matches" in client.get("/tools/?q=zzz").content.decode()


@pytest.mark.django_db
def test_run_form_starts_a_run_and_redirects_to_its_page(signed_in, hello, staging):
    response = signed_in.post("/scripts/hello/", {"environment": staging.pk, "params": '{"name": "Ada"}'})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert run.params == {"name": "Ada"} and run.environment == staging and run.status == RunStatus.QUEUED


@pytest.mark.django_db
def test_run_form_rejects_bad_parameters_next_to_the_field(signed_in, hello, staging):
    for params, message in (("{not json", "Enter a valid JSON"), ("[1, 2]", "must be a JSON object")):
        response = signed_in.post("/scripts/hello/", {"environment": staging.pk, "params": params})
        assert response.status_code == 400
        assert message in response.content.decode()
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_a_forged_post_for_an_environment_not_granted_starts_nothing(client, make_user, hello, staging, production):
    ops = make_user("ops")
    grant_runner(ops, hello, production)
    client.force_login(ops)
    page = client.get("/scripts/hello/").content.decode()
    assert "Production" in page and f'value="{staging.pk}"' not in page
    response = client.post("/scripts/hello/", {"environment": staging.pk, "params": "{}"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_run_page_shows_status_and_an_escaped_log_tail(signed_in, engineer, hello, staging):
    run = services.request_run(engineer, hello, staging, {})
    LogChunk.objects.create(run=run, seq=1, text="<script>alert('x')</script>\n\x1b[31mred\x1b[0m\n")
    page = signed_in.get(f"/runs/{run.pk}/").content.decode()
    assert "Queued" in page
    assert "<script>alert" not in page
    assert "\\u003Cscript\\u003Ealert" in page  # the tail travels as escaped JSON and is rendered by ansi_up
    assert "Cancel run" in page


@pytest.mark.django_db(transaction=True)
def test_download_streams_the_whole_log(engineer, hello, staging):
    run = services.request_run(engineer, hello, staging, {})
    LogChunk.objects.bulk_create(LogChunk(run=run, seq=i, text=f"line {i} é\n") for i in range(1, 501))
    response, body = download_log(engineer, run)
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}-hello.log"'
    assert body.decode() == "".join(f"line {i} é\n" for i in range(1, 501))


@pytest.mark.django_db
def test_cancel_button(signed_in, engineer, hello, staging):
    run = services.request_run(engineer, hello, staging, {})
    response = signed_in.post(f"/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert signed_in.get(f"/runs/{run.pk}/cancel/").status_code == 405


@pytest.mark.django_db
def test_run_history_filters_and_pages_by_keyset(signed_in, engineer, make_user, hello, staging, production,
                                                 django_assert_max_num_queries):
    other = make_user("other", groups=["engineering"])
    runs = [services.request_run(engineer, hello, staging, {}) for _ in range(52)]
    services.request_run(other, hello, production, {})
    with django_assert_max_num_queries(12):
        first = signed_in.get("/runs/")
    assert len(first.context["runs"]) == 50
    assert first.context["next_query"]
    second = signed_in.get(f"/runs/?{first.context['next_query']}")
    assert len(second.context["runs"]) == 3 and second.context["next_query"] is None
    assert [r.pk for r in signed_in.get("/runs/?environment=production").context["runs"]] == [runs[-1].pk + 1]
    assert len(signed_in.get("/runs/?requested_by=other").context["runs"]) == 1
    assert len(signed_in.get("/runs/?status=queued&script=hello").context["runs"]) == 50
    assert signed_in.get("/runs/?status=bogus").status_code == 400


@pytest.mark.django_db
def test_run_history_hides_runs_of_scripts_you_cannot_see(client, make_user, engineer, hello, staging):
    services.request_run(engineer, hello, staging, {})
    client.force_login(make_user("stranger"))
    assert client.get("/runs/").context["runs"] == []


@pytest.mark.django_db
def test_engineer_adds_a_script_in_the_admin_and_it_is_runnable(client, engineer, staging):
    engineer.is_staff = True
    engineer.save()
    client.force_login(engineer)
    response = client.post("/admin/scripts_app/script/add/", {
        "name": "Count rows", "slug": "count-rows", "description": "", "language": "python",
        "allowed_environments": [staging.pk], "timeout_seconds": 60, "source": "print('counted')\n",
        "version_message": "first", "versions-TOTAL_FORMS": 0, "versions-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    script = Script.objects.get(slug="count-rows")
    assert script.current_version.source == "print('counted')\n" and script.current_version.author == engineer
    run = services.request_run(engineer, script, staging, {})
    assert run.version == script.current_version
    edit = client.get(f"/admin/scripts_app/script/{script.pk}/change/").content.decode()
    assert "print(&#x27;counted&#x27;)" in edit


@pytest.mark.django_db
def test_secrets_are_encrypted_at_rest_and_never_shown(admin_client, staging):
    response = admin_client.post("/admin/scripts_app/secret/add/", {
        "environment": staging.pk, "name": "DB_PASSWORD", "value": "hunter2-very-secret",
    })
    assert response.status_code == 302
    secret = Secret.objects.get()
    assert secret.get_value() == "hunter2-very-secret"
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_value::text FROM scripts_app_secret")
        raw = cursor.fetchone()[0]
    assert "hunter2" not in raw and b"hunter2" not in bytes(secret.encrypted_value)
    for url in (f"/admin/scripts_app/secret/{secret.pk}/change/", "/admin/scripts_app/secret/",
                f"/admin/scripts_app/environment/{staging.pk}/change/"):
        assert "hunter2" not in admin_client.get(url).content.decode()
    # saving without a value keeps the old one
    admin_client.post(f"/admin/scripts_app/secret/{secret.pk}/change/",
                      {"environment": staging.pk, "name": "DB_PASSWORD", "value": ""})
    secret.refresh_from_db()
    assert secret.get_value() == "hunter2-very-secret"


@pytest.mark.django_db
def test_a_new_secret_needs_a_value(admin_client, staging):
    response = admin_client.post("/admin/scripts_app/secret/add/", {"environment": staging.pk, "name": "X"})
    assert response.status_code == 200 and "A new secret needs a value" in response.content.decode()
    assert not Secret.objects.exists()


@pytest.mark.django_db
def test_script_versions_are_immutable(hello):
    version = hello.current_version
    version.source = "print('changed')\n"
    with pytest.raises(TypeError):
        version.save()
    with pytest.raises(TypeError):
        type(version).objects.filter(pk=version.pk).update(source="x")
    assert hello.save_source("print('hello')\n") == version  # same code: no new version
    assert hello.versions.count() == 1


def test_production_settings_pass_the_deploy_check():
    env = {k: v for k, v in os.environ.items() if k not in ("SECURE_SSL_REDIRECT", "SECURE_COOKIES")}
    env.update(DEBUG="0", SECRET_KEY="k" * 20 + "-Qz8#f!2@xv9$LmN0pR7^tW4&yB6*cE1",
               ALLOWED_HOSTS="backfill.example.com",
               SECRETS_ENCRYPTION_KEY="akLOwfL4kAJ9TinHxZ3BOBtBdvnw-Tci2cmlainYcpw=")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": ""}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    from django.core.management import call_command

    call_command("seed_demo")
    call_command("seed_demo")
    assert Script.objects.filter(slug__in=["hello", "ticker"]).count() == 2
    assert all(s.versions.count() == 1 for s in Script.objects.all())


@pytest.mark.django_db
def test_a_secret_cannot_be_moved_to_another_environment(admin_client, staging, production):
    secret = Secret(environment=production, name="DB_PASSWORD")
    secret.set_value("prod-only")
    secret.save()
    admin_client.post(f"/admin/scripts_app/secret/{secret.pk}/change/",
                      {"environment": staging.pk, "name": "OTHER", "value": ""})
    secret.refresh_from_db()
    assert secret.environment == production and secret.name == "DB_PASSWORD"


@pytest.mark.django_db
def test_staff_make_api_tokens_only_for_themselves(client, make_user, django_user_model):
    from django.contrib.auth.models import Permission

    from scripts_app.models import ApiToken

    root = django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    staff = make_user("staffer", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_apitoken", "view_apitoken"]))
    client.force_login(staff)
    response = client.post("/admin/scripts_app/apitoken/add/", {"user": root.pk, "name": "sneaky"})
    assert response.status_code in (200, 302)
    assert not ApiToken.objects.filter(user=root).exists()
    client.post("/admin/scripts_app/apitoken/add/", {"user": staff.pk, "name": "mine"})
    assert ApiToken.objects.filter(user=staff, name="mine").exists()


@pytest.mark.django_db
def test_nul_in_parameters_is_a_field_error_not_a_500(signed_in, hello, staging):
    response = signed_in.post("/scripts/hello/", {"environment": staging.pk, "params": '{"x": "a\\u0000b"}'})
    assert response.status_code == 400 and "NUL" in response.content.decode()


def add_visible_scripts_and_runs(count, team, runner, environment, start):
    """`count` scripts the team may view and run, each with one run."""
    for n in range(start, start + count):
        script = Script.objects.create(name=f"Tool {n}", slug=f"tool-{n}")
        script.allowed_environments.set([environment])
        script.save_source(f"print({n})\n")
        assign_perm("scripts_app.view_script", team, script)
        assign_perm("scripts_app.run_script", team, script)
        services.request_run(runner, script, environment, {"n": n})


@pytest.mark.django_db
def test_tools_and_run_history_take_as_many_queries_for_forty_scripts_as_for_two(
        client, make_user, staging, django_assert_max_num_queries):
    """Permissions are applied in the query: no query per script or per run, for object permissions too."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ops = make_user("ops", groups=["ops"])
    team = ops.groups.get()
    assign_perm("scripts_app.use_environment", team, staging)
    add_visible_scripts_and_runs(2, team, ops, staging, start=0)
    client.force_login(ops)
    pages = ["/tools/", "/runs/", "/runs/?environment=staging&status=queued&requested_by=ops"]
    baseline = {}
    for url in pages:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        baseline[url] = len(queries)

    add_visible_scripts_and_runs(38, team, ops, staging, start=2)
    for url in pages:
        with django_assert_max_num_queries(baseline[url]):
            page = client.get(url).content.decode()
        assert "Tool 39" in page, url
