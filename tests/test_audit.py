"""The audit log: one event per audited action, by the doors users take; append-only everywhere."""

import csv
import io
import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.test import Client
from guardian.shortcuts import assign_perm, remove_perm

from audit.models import AppendOnlyError, AuditEvent
from runs import services
from runs.models import RunStatus
from scripts_app.models import Script, Secret
from tests.conftest import PASSWORD, NewEvents, work_queue


@pytest.fixture
def hello(make_script, staging, production):
    return make_script("print('hello')\n", slug="hello", environments=[staging, production])


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def root_client(client, superuser):
    client.force_login(superuser)
    return client


def script_form(**overrides):
    """What the admin's script form posts, its read-only versions inline included."""
    data = {
        "name": "Campaign backfill", "slug": "campaign-backfill", "description": "", "language": "python",
        "owner_team": "", "allowed_environments": [], "timeout_seconds": "600", "source": "print('v1')\n",
        "version_message": "", "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0", "versions-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def admin_errors(response):
    """The form and inline errors of an admin page that did not save, for a failing assertion."""
    context = response.context or {}
    form = context.get("adminform")
    inlines = context.get("inline_admin_formsets", [])
    return {"form": form and form.form.errors, "inlines": [f.formset.errors for f in inlines]}


# --- runs -------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_run_writes_requested_started_and_finished_once_each(client, engineer, hello, staging):
    client.force_login(engineer)
    new = NewEvents()
    response = client.post("/scripts/hello/", {"environment": staging.pk, "params": "{}"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302
    requested = new.one("run.requested")
    assert requested.actor == engineer and requested.ip_address == "10.1.2.3"
    assert requested.detail["script"] == "hello" and requested.detail["environment"] == "staging"

    new = NewEvents()
    work_queue(staging.queue_name)
    started, finished = new.all()
    assert (started.action, finished.action) == ("run.started", "run.finished")
    assert started.object_id == finished.object_id == requested.object_id
    assert finished.detail["status"] == RunStatus.SUCCEEDED and finished.detail["exit_code"] == 0


@pytest.mark.django_db
def test_cancelling_writes_one_event_and_a_second_cancel_none(client, engineer, hello, staging):
    run = services.request_run(engineer, hello, staging, {})
    client.force_login(engineer)
    new = NewEvents()
    client.post(f"/runs/{run.pk}/cancel/")
    event = new.one("run.cancelled")
    assert event.actor == engineer and event.object_id == str(run.pk)
    new = NewEvents()
    client.post(f"/runs/{run.pk}/cancel/")
    assert new.actions() == []


# --- scripts, environments, secrets through the admin --------------------------------------------

@pytest.mark.django_db
def test_creating_a_script_in_the_admin_writes_created_and_its_first_version(root_client, superuser, staging):
    new = NewEvents()
    response = root_client.post("/admin/scripts_app/script/add/", script_form(allowed_environments=[staging.pk]))
    assert response.status_code == 302, admin_errors(response)
    script = Script.objects.get(slug="campaign-backfill")
    created, version = new.all()
    assert (created.action, version.action) == ("script.created", "script.version_saved")
    assert created.actor == version.actor == superuser
    assert version.detail["version"] == 1 and version.object_id == str(script.pk)


@pytest.mark.django_db
def test_a_new_version_writes_one_event_and_unchanged_code_none(root_client, staging):
    root_client.post("/admin/scripts_app/script/add/", script_form(allowed_environments=[staging.pk]))
    script = Script.objects.get(slug="campaign-backfill")
    url = f"/admin/scripts_app/script/{script.pk}/change/"

    new = NewEvents()
    root_client.post(url, script_form(allowed_environments=[staging.pk], source="print('v2')\n",
                                      version_message="second"))
    assert new.one("script.version_saved").detail["message"] == "second"

    new = NewEvents()
    root_client.post(url, script_form(allowed_environments=[staging.pk], source="print('v2')\n"))
    assert new.actions() == []


@pytest.mark.django_db
def test_changing_an_environment_writes_one_event(root_client, superuser, staging):
    new = NewEvents()
    response = root_client.post(f"/admin/scripts_app/environment/{staging.pk}/change/", {
        "name": "Staging EU", "slug": "staging", "queue_name": staging.queue_name, "python_path": "",
        "bash_path": "/bin/bash", "description": "", "approvals_needed": "1", "approval_expiry_hours": "24",
        "secrets-TOTAL_FORMS": "0", "secrets-INITIAL_FORMS": "0", "secrets-MIN_NUM_FORMS": "0",
        "secrets-MAX_NUM_FORMS": "1000",
    })
    assert response.status_code == 302, admin_errors(response)
    event = new.one("environment.changed")
    assert event.actor == superuser and event.object_repr == "Staging EU"


@pytest.mark.django_db
def test_secret_created_changed_and_deleted_write_one_event_each_without_the_value(root_client, staging):
    new = NewEvents()
    root_client.post("/admin/scripts_app/secret/add/",
                     {"environment": staging.pk, "name": "DB_PASSWORD", "value": "first-value-1"})
    created = new.one("secret.created")
    secret = Secret.objects.get()

    new = NewEvents()
    root_client.post(f"/admin/scripts_app/secret/{secret.pk}/change/",
                     {"environment": staging.pk, "name": "DB_PASSWORD", "value": "second-value-2"})
    changed = new.one("secret.changed")

    new = NewEvents()
    root_client.post(f"/admin/scripts_app/secret/{secret.pk}/delete/", {"post": "yes"})
    deleted = new.one("secret.deleted")
    assert not Secret.objects.exists()

    for event in (created, changed, deleted):
        assert event.detail == {"environment": "staging", "name": "DB_PASSWORD"}
        assert "value-" not in f"{event.detail} {event.object_repr}"


# --- permissions and teams -------------------------------------------------------------------------

@pytest.mark.django_db
def test_object_permission_granted_and_revoked_write_one_event_each(make_user, hello):
    ops_team = Group.objects.create(name="ops")
    new = NewEvents()
    assign_perm("scripts_app.run_script", ops_team, hello)
    granted = new.one("permission.granted")
    assert granted.detail == {"permission": "run_script", "team": "ops"}
    assert (granted.object_type, granted.object_id) == ("script", str(hello.pk))

    new = NewEvents()
    remove_perm("scripts_app.run_script", ops_team, hello)
    assert new.one("permission.revoked").detail == {"permission": "run_script", "team": "ops"}

    user = make_user("ana")
    new = NewEvents()
    assign_perm("scripts_app.view_script", user, hello)
    assert new.one("permission.granted").detail == {"permission": "view_script", "user": "ana"}


@pytest.mark.django_db
def test_global_permission_granted_and_revoked_write_one_event_each():
    team = Group.objects.create(name="engineering")
    run_script = Permission.objects.get(codename="run_script")
    new = NewEvents()
    team.permissions.add(run_script)
    assert new.one("permission.granted").detail == {"permission": "run_script", "team": "engineering"}
    new = NewEvents()
    team.permissions.remove(run_script)
    assert new.one("permission.revoked").detail == {"permission": "run_script", "team": "engineering"}


@pytest.mark.django_db
def test_team_changes_in_the_admin_write_one_event_each(root_client, make_user):
    ana = make_user("ana")
    new = NewEvents()
    root_client.post("/admin/auth/group/add/", {"name": "finance", "permissions": []})
    assert new.one("team.created").object_repr == "finance"
    team = Group.objects.get(name="finance")

    new = NewEvents()
    ana.groups.add(team)
    member = new.one("team.member_added")
    assert member.detail == {"user": "ana"} and member.object_id == str(team.pk)

    new = NewEvents()
    team.user_set.remove(ana)
    assert new.one("team.member_removed").detail == {"user": "ana"}

    new = NewEvents()
    root_client.post(f"/admin/auth/group/{team.pk}/change/", {"name": "finance-eu", "permissions": []})
    assert new.one("team.changed").object_repr == "finance-eu"


# --- signing in and out ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_sign_in_sign_out_and_failed_sign_in_write_one_event_each(make_user):
    ana = make_user("ana")
    browser = Client(REMOTE_ADDR="192.0.2.7")

    new = NewEvents()
    browser.post("/accounts/login/", {"login": "ana", "password": "wrong"})
    failed = new.one("auth.sign_in_failed")
    assert failed.detail == {"username": "ana"} and failed.ip_address == "192.0.2.7" and failed.actor is None

    new = NewEvents()
    browser.post("/accounts/login/", {"login": "ana", "password": PASSWORD})
    signed_in = new.one("auth.signed_in")
    assert signed_in.actor == ana and signed_in.ip_address == "192.0.2.7"

    new = NewEvents()
    browser.post("/accounts/logout/")
    assert new.one("auth.signed_out").actor == ana


# --- append-only ------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_events_cannot_be_updated_or_deleted_through_the_orm(engineer, hello, staging):
    services.request_run(engineer, hello, staging, {})
    event = AuditEvent.objects.get(action="run.requested")
    event.action = "run.nothing_happened"
    for attempt in (event.save, event.delete, AuditEvent.objects.all().delete,
                    lambda: AuditEvent.objects.filter(pk=event.pk).update(action="x"),
                    lambda: AuditEvent.objects.bulk_update([event], ["action"])):
        with pytest.raises(AppendOnlyError), transaction.atomic():
            attempt()
    assert AuditEvent.objects.get(pk=event.pk).action == "run.requested"


@pytest.mark.django_db
def test_the_admin_can_read_but_not_change_or_delete_events(root_client, engineer, hello, staging):
    services.request_run(engineer, hello, staging, {})
    event = AuditEvent.objects.get(action="run.requested")
    page = root_client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode() and "run.requested" in page.content.decode()
    assert root_client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"}).status_code == 403
    assert root_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert root_client.get("/admin/audit/auditevent/add/").status_code == 403
    listing = root_client.get("/admin/audit/auditevent/").content.decode()
    assert "delete_selected" not in listing
    bulk = root_client.post("/admin/audit/auditevent/", {"action": "delete_selected", "_selected_action": [event.pk],
                                                         "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert AuditEvent.objects.filter(pk=event.pk, action="run.requested").exists()


def exported_rows(response):
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.django_db
def test_the_admin_exports_the_filtered_log_as_csv(root_client, engineer, hello, staging):
    services.request_run(engineer, hello, staging, {})
    hello.save_source("print(2)\n", author=engineer)
    rows = exported_rows(root_client.get("/admin/audit/auditevent/export.csv?action__exact=run.requested"))
    assert rows[0][:3] == ["created_at", "actor_username", "action"]
    assert [row[1:3] for row in rows[1:]] == [["engineer", "run.requested"]]
    assert json.loads(rows[1][rows[0].index("detail")])["script"] == "hello"
    rows = exported_rows(root_client.get("/admin/audit/auditevent/export.csv?q=version_saved"))
    assert [row[2] for row in rows[1:]] == ["script.version_saved", "script.version_saved"]


@pytest.mark.django_db
def test_csv_cells_cannot_become_spreadsheet_formulas(root_client):
    Client().post("/accounts/login/", {"login": "=HYPERLINK(\"http://evil.example\")", "password": "x"})
    rows = exported_rows(root_client.get("/admin/audit/auditevent/export.csv?action__exact=auth.sign_in_failed"))
    repr_column = rows[0].index("object_repr")
    assert rows[1][repr_column] == "'=HYPERLINK(\"http://evil.example\")"


@pytest.mark.django_db
def test_the_csv_export_is_for_those_who_may_view_the_log(client, engineer):
    client.force_login(engineer)
    assert client.get("/admin/audit/auditevent/export.csv").status_code in (302, 403)
