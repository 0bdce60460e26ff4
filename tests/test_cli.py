"""The `backfill` command against a live test server (daphne and a worker), as a terminal user runs it."""

import json
import subprocess

import pytest

from scripts_app.models import ApiToken
from tests.conftest import ROOT, free_port
from ui_builder.services import import_definition

pytestmark = pytest.mark.django_db(transaction=True)


def backfill(*args, url, token, timeout=60):
    env = {"PATH": "/usr/bin:/bin", "BACKFILL_URL": url, "BACKFILL_TOKEN": token, "HOME": "/nonexistent"}
    return subprocess.run([str(ROOT / "bin" / "backfill"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def token(engineer):
    return ApiToken.issue(engineer, "cli")[1]


@pytest.fixture
def counter(make_script, staging):
    script = make_script("import json, os, time\n"
                         "params = json.load(open(os.environ['BACKFILL_PARAMS_FILE']))\n"
                         "for i in range(int(params['times'])):\n"
                         "    print('tick', i, params['who'], flush=True)\n"
                         "    time.sleep(0.2)\n"
                         "raise SystemExit(0 if params['who'] != 'fail' else 3)\n", slug="counter")
    import_definition(script, {"fields": [
        {"name": "times", "type": "integer", "required": True, "min": "1", "max": "10", "order": 1},
        {"name": "who", "type": "text", "required": True, "order": 2}]})
    return script


def test_a_run_is_started_and_followed_to_its_end(live_stack, token, counter):
    result = backfill("run", "counter", "--env", "staging", "--param", "times=3", "--param", "who=Ada",
                      url=live_stack.url, token=token)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "tick 0 Ada\ntick 1 Ada\ntick 2 Ada\n"
    assert "succeeded" in result.stderr


def test_the_exit_status_is_the_runs(live_stack, token, counter):
    result = backfill("run", "counter", "--env", "staging", "--param", "times=1", "--param", "who=fail",
                      url=live_stack.url, token=token)
    assert result.returncode == 1 and "failed: Exited with code 3." in result.stderr


def test_scripts_show_and_cancel(live_stack, token, counter):
    listing = backfill("scripts", url=live_stack.url, token=token)
    assert listing.returncode == 0 and listing.stdout.split()[0] == "counter"
    started = backfill("run", "counter", "--env", "staging", "--param", "times=10", "--param", "who=x",
                       "--no-follow", url=live_stack.url, token=token)
    run_id = started.stderr.split("#", 1)[1].split()[0]
    cancelled = backfill("cancel", run_id, url=live_stack.url, token=token)
    assert cancelled.returncode == 0
    assert backfill("log", run_id, url=live_stack.url, token=token).returncode == 1
    shown = json.loads(backfill("show", run_id, url=live_stack.url, token=token).stdout)
    assert shown["status"] == "cancelled"


def test_clear_errors(live_stack, token, counter):
    bad_token = backfill("scripts", url=live_stack.url, token="bf_not-a-token")
    assert bad_token.returncode == 2 and "The API token was refused" in bad_token.stderr
    unknown = backfill("run", "nope", "--env", "staging", url=live_stack.url, token=token)
    assert unknown.returncode == 2 and "script: No script 'nope' that you may see." in unknown.stderr
    invalid = backfill("run", "counter", "--env", "staging", "--param", "times=99", url=live_stack.url, token=token)
    assert invalid.returncode == 2
    assert "params.times: Ensure this value is less than or equal to 10." in invalid.stderr
    assert "params.who: This field is required." in invalid.stderr
    no_scheme = backfill("scripts", url="backfill.example.com", token=token)
    assert no_scheme.returncode == 2 and "check BACKFILL_URL" in no_scheme.stderr
    down = backfill("scripts", url=f"http://127.0.0.1:{free_port()}", token=token)
    assert down.returncode == 2 and "Cannot reach Backfill at" in down.stderr
    no_token = subprocess.run([str(ROOT / "bin" / "backfill"), "scripts"], env={"PATH": "/usr/bin:/bin",
                              "HOME": "/nonexistent"}, capture_output=True, text=True)
    assert no_token.returncode == 2 and "No API token" in no_token.stderr


def test_approvals_from_the_terminal(live_stack, engineer, make_user, counter, production):
    production.approval_required = True
    production.save()
    counter.allowed_environments.add(production)
    ana = make_user("ana", groups=["engineering"])
    requested = backfill("run", "counter", "--env", "production", "--param", "times=1", "--param", "who=Bo",
                         "--reason", "a test", "--no-follow", url=live_stack.url,
                         token=ApiToken.issue(engineer, "cli")[1])
    assert "awaiting_approval" in requested.stderr
    ana_token = ApiToken.issue(ana, "cli")[1]
    listed = backfill("approvals", url=live_stack.url, token=ana_token)
    request_id = listed.stdout.split()[0].lstrip("#")
    assert "counter on production by engineer (0/1): a test" in listed.stdout
    approved = backfill("approve", request_id, "--comment", "ok", url=live_stack.url, token=ana_token)
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "approved"
