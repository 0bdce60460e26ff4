"""The JSON API with personal tokens: happy paths and bad input."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from runs import services
from runs.models import LogChunk, Run, RunStatus
from scripts_app.models import ApiToken
from tests.conftest import grant_runner, work_queue


@pytest.fixture
def api(engineer):
    _, key = ApiToken.issue(engineer, "tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def hello(make_script, staging, production):
    return make_script("import os\nprint('hi', os.environ['BACKFILL_PARAM_NAME'])\n", slug="hello",
                       environments=[staging, production])


@pytest.mark.django_db
def test_tokens_are_hashed_at_rest_and_the_command_prints_one(engineer, capsys):
    call_command("create_api_token", "engineer")
    key = capsys.readouterr().out.strip()
    token = ApiToken.objects.get()
    assert key.startswith("bf_") and len(key) > 40
    assert key not in (token.key_hash, token.key_prefix) and token.key_hash == ApiToken.hash_key(key)
    assert ApiToken.objects.for_key(key).user == engineer


@pytest.mark.django_db
def test_requests_without_a_valid_token_are_refused(hello):
    client = APIClient()
    assert client.get("/api/scripts/").status_code in (401, 403)
    client.credentials(HTTP_AUTHORIZATION="Bearer bf_not-a-real-token")
    response = client.get("/api/scripts/")
    assert response.status_code == 401
    assert "Invalid" in response.json()["detail"]


@pytest.mark.django_db
def test_inactive_users_tokens_stop_working(api, engineer, hello):
    engineer.is_active = False
    engineer.save()
    assert api.get("/api/scripts/").status_code == 401


@pytest.mark.django_db
def test_list_and_show_scripts(api, hello, make_script):
    make_script("print(2)\n", slug="other")
    listed = api.get("/api/scripts/").json()
    assert [s["slug"] for s in listed] == ["hello", "other"]
    assert api.get("/api/scripts/?q=hel").json()[0]["slug"] == "hello"
    detail = api.get("/api/scripts/hello/").json()
    assert detail["current_version"] == 1
    assert detail["source"].startswith("import os")
    assert sorted(detail["environments_you_may_use"]) == ["production", "staging"]
    assert api.get("/api/scripts/nope/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_start_a_run_follow_its_log_and_see_it_succeed(api, hello, staging):
    response = api.post("/api/runs/", {"script": "hello", "environment": "staging", "params": {"name": "Ada"}},
                        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["script"] == "hello" and body["version"] == 1
    work_queue(staging.queue_name)
    run = api.get(f"/api/runs/{body['id']}/").json()
    assert run["status"] == "succeeded" and run["exit_code"] == 0 and run["finished"]
    log = api.get(f"/api/runs/{body['id']}/log/?after=0").json()
    assert "".join(c["text"] for c in log["chunks"]) == "hi Ada\n"
    assert log["finished"] and log["next_after"] == log["chunks"][-1]["seq"]
    assert api.get(f"/api/runs/{body['id']}/log/?after={log['next_after']}").json()["chunks"] == []


@pytest.mark.django_db
@pytest.mark.parametrize("payload, field, message", [
    ({"environment": "staging"}, "script", "required"),
    ({"script": "nope", "environment": "staging"}, "script", "No script 'nope'"),
    ({"script": "hello", "environment": "mars"}, "environment", "No environment 'mars'"),
    ({"script": "hello", "environment": "staging", "params": [1, 2]}, "params", "dictionary"),
    ({"script": "hello", "environment": "staging", "params": "x"}, "params", "dictionary"),
    ({"script": "hello", "environment": "staging", "dry_run": "maybe"}, "dry_run", "valid boolean"),
    ({"script": "hello", "environment": "staging", "params": {"x": "a\u0000b"}}, "params", "NUL"),
])
def test_bad_run_requests_get_a_message_per_field(api, hello, payload, field, message):
    response = api.post("/api/runs/", payload, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_malformed_json_is_a_400(api, hello):
    response = api.post("/api/runs/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.django_db
def test_a_run_where_the_user_may_not_run_is_refused(make_user, hello, staging, production):
    ops = make_user("ops")
    grant_runner(ops, hello, production)
    _, key = ApiToken.issue(ops)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = client.post("/api/runs/", {"script": "hello", "environment": "staging"}, format="json")
    assert response.status_code == 403
    assert "may not run" in response.json()["detail"]
    assert client.post("/api/runs/", {"script": "hello", "environment": "production"},
                       format="json").status_code == 201


@pytest.mark.django_db
def test_runs_of_scripts_you_cannot_see_are_404(api, make_user, hello, staging):
    other = make_user("other")
    grant_runner(other, hello, staging)
    run = services.request_run(other, hello, staging, {"name": "x"})
    _, key = ApiToken.issue(make_user("stranger"))
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    for url in (f"/api/runs/{run.pk}/", f"/api/runs/{run.pk}/log/"):
        assert stranger.get(url).status_code == 404
    assert stranger.post(f"/api/runs/{run.pk}/cancel/").status_code == 404
    assert api.get(f"/api/runs/{run.pk}/").status_code == 200


@pytest.mark.django_db
def test_log_paging_and_a_bad_after(api, engineer, hello, staging):
    run = services.request_run(engineer, hello, staging, {"name": "x"})
    LogChunk.objects.bulk_create(LogChunk(run=run, seq=i, text=f"{i}\n") for i in range(1, 6))
    log = api.get(f"/api/runs/{run.pk}/log/?after=3").json()
    assert [c["seq"] for c in log["chunks"]] == [4, 5]
    response = api.get(f"/api/runs/{run.pk}/log/?after=abc")
    assert response.status_code == 400 and "after" in response.json()


@pytest.mark.django_db
def test_cancel_a_queued_run(api, engineer, hello, staging):
    run = services.request_run(engineer, hello, staging, {"name": "x"})
    response = api.post(f"/api/runs/{run.pk}/cancel/")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


@pytest.mark.django_db
def test_a_viewer_cannot_cancel(make_user, engineer, hello, staging):
    viewer = make_user("viewer")
    from guardian.shortcuts import assign_perm

    assign_perm("scripts_app.view_script", viewer, hello)
    run = services.request_run(engineer, hello, staging, {"name": "x"})
    _, key = ApiToken.issue(viewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(f"/api/runs/{run.pk}/").status_code == 200
    assert client.post(f"/api/runs/{run.pk}/cancel/").status_code == 403
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED


@pytest.mark.django_db
def test_openapi_schema_describes_the_endpoints(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/api/scripts/", "/api/scripts/{slug}/", "/api/runs/", "/api/runs/{run_id}/",
                 "/api/runs/{run_id}/log/", "/api/runs/{run_id}/cancel/"):
        assert path in paths
