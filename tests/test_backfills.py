"""Backfills with backfill_sdk against PostgreSQL: crashes and resume with a ledger, pause, batch size,
auto-pause, dry run, durable checkpoints, and the standalone terminal mode."""

import os
import re
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.db import connection

from runs import services
from runs.models import BatchStat, LogChunk, Run, RunStatus
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 200

BACKFILL = '''
import json, os, sys, time
import psycopg
import backfill_sdk as bf

with open(os.environ["BACKFILL_PARAMS_FILE"]) if "BACKFILL_PARAMS_FILE" in os.environ else open(sys.argv[1]) as f:
    params = json.load(f)
conn = psycopg.connect(params["dsn"], autocommit=True)
fail_ids = set(params.get("fail_ids", []))
print("pid", os.getpid(), flush=True)


def apply(rows, dry_run):
    ids = [row[0] for row in rows]
    if fail_ids & set(ids):
        raise RuntimeError("injected failure")
    if dry_run:
        print(f"would convert {len(ids)} campaigns", flush=True)
        return
    with conn.transaction():
        written = conn.execute("UPDATE campaigns SET budget_currency = 'EUR' "
                               "WHERE id = ANY(%s) AND budget_currency IS NULL RETURNING id", (ids,)).fetchall()
        conn.cursor().executemany("INSERT INTO ledger (campaign_id, run) VALUES (%s, %s)",
                                  [(w[0], params.get("label", "")) for w in written])
    time.sleep(params.get("delay", 0))


source = bf.KeysetSource(conn, table="campaigns", key="id", where="budget_currency IS NULL")
summary = bf.run(source, apply, name="campaigns", batch_size=params.get("batch", 10), retries=1,
                 backoff_seconds=0.01, max_error_rate=params.get("max_error_rate", 0.5))
print("summary", json.dumps(summary), flush=True)
'''


@pytest.fixture
def target():
    """A database of its own for the backfill to write to: campaigns to fill, and a ledger of every write."""
    settings = connection.settings_dict
    name = f"{settings['NAME']}_target"
    admin = f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    dsn = f"postgresql://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE campaigns (id serial PRIMARY KEY, budget_currency text)")
        conn.execute("CREATE TABLE ledger (id serial PRIMARY KEY, campaign_id int NOT NULL, run text NOT NULL)")
        conn.execute(f"INSERT INTO campaigns (budget_currency) SELECT NULL FROM generate_series(1, {ROWS})")
    yield dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def query(dsn, sql):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def written(dsn):
    return query(dsn, "SELECT count(*) FROM campaigns WHERE budget_currency IS NOT NULL")[0][0]


def assert_every_row_written_exactly_once(dsn):
    assert written(dsn) == ROWS
    assert query(dsn, "SELECT count(*), count(DISTINCT campaign_id) FROM ledger")[0] == (ROWS, ROWS)


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def run_state(run):
    return Run.objects.get(pk=run.pk)


def finished(run):
    return wait_for(lambda: (r := run_state(run)).is_finished and r)


def script_pid(run):
    def printed():
        match = re.search(r"pid (\d+)", "".join(LogChunk.objects.filter(run=run).values_list("text", flat=True)))
        return match and int(match.group(1))

    return wait_for(printed)


def log_of(run):
    return "".join(LogChunk.objects.filter(run=run).order_by("seq").values_list("text", flat=True))


@pytest.fixture
def backfill(make_script, staging):
    return make_script(BACKFILL, slug="campaigns", timeout=300)


def start(engineer, backfill, staging, target, **params):
    return services.request_run(engineer, backfill, staging, {"dsn": target, "label": "first", **params})


def test_killing_the_script_mid_run_then_resuming_writes_every_row_exactly_once(
        live_stack, engineer, backfill, staging, target):
    run = start(engineer, backfill, staging, target, delay=0.05)
    pid = script_pid(run)
    wait_for(lambda: (run_state(run).checkpoint or {}).get("done", 0) >= 50)
    os.kill(pid, signal.SIGKILL)
    run = finished(run)
    assert run.status == RunStatus.FAILED and "SIGKILL" in run.status_detail
    before = written(target)
    assert 0 < before < ROWS

    resumed = finished(services.resume_run(run, engineer))
    assert resumed.status == RunStatus.SUCCEEDED and resumed.resumed_from == run
    assert_every_row_written_exactly_once(target)
    # It went on from the checkpoint: its count starts there, and it wrote only what was left.
    assert f'"rows": {run.checkpoint["done"] + ROWS - before}' in log_of(resumed)


def test_killing_the_worker_then_reaping_and_resuming_writes_every_row_exactly_once(
        live_stack, engineer, backfill, staging, target, settings):
    run = start(engineer, backfill, staging, target, delay=0.05)
    script_pid(run)
    wait_for(lambda: (run_state(run).checkpoint or {}).get("done", 0) >= 50)
    horse = int(run_state(run).worker.rsplit(":", 1)[1])
    os.kill(horse, signal.SIGKILL)  # the supervising work horse dies; its script dies with it
    settings.BACKFILL_LOST_AFTER_SECONDS = 1.5
    wait_for(lambda: services.reap_lost_runs())
    run = run_state(run)
    assert run.status == RunStatus.LOST

    resumed = finished(services.resume_run(run, engineer))
    assert resumed.status == RunStatus.SUCCEEDED
    assert_every_row_written_exactly_once(target)


def test_nothing_changes_while_paused_and_a_new_batch_size_applies_from_the_next_batch(
        live_stack, engineer, backfill, staging, target):
    run = start(engineer, backfill, staging, target, delay=0.05)
    wait_for(lambda: (run_state(run).checkpoint or {}).get("done", 0) >= 30)
    services.set_controls(run, engineer, paused=True)
    time.sleep(1.0)  # the chunk in hand finishes; then nothing
    frozen = written(target)
    time.sleep(1.5)
    assert written(target) == frozen < ROWS

    services.set_controls(run, engineer, paused=False, batch_size=7)
    run = finished(run)
    assert run.status == RunStatus.SUCCEEDED
    sizes = list(BatchStat.objects.filter(run=run).order_by("seq").values_list("rows", flat=True))
    first_seven = sizes.index(7)
    assert set(sizes[:first_seven]) == {10}
    assert set(sizes[first_seven:-1]) == {7} and sizes[-1] <= 7
    assert_every_row_written_exactly_once(target)


def test_the_run_pauses_itself_when_too_many_batches_fail(live_stack, engineer, backfill, staging, target):
    run = start(engineer, backfill, staging, target, fail_ids=list(range(41, 200)), max_error_rate=0.5)
    wait_for(lambda: run_state(run).paused, timeout=60)
    paused = run_state(run)
    assert "batches failed" in paused.pause_reason and paused.status == RunStatus.RUNNING
    assert written(target) == 40
    wait_for(lambda: "injected failure" in log_of(run))  # the log is stored every 100 ms
    services.cancel_run(paused, engineer)
    run = finished(run)
    assert run.status == RunStatus.CANCELLED
    assert run.checkpoint == {"after": 40, "done": 40}  # never past a failed chunk: a resume tries them again


def test_a_dry_run_writes_nothing_and_saves_no_checkpoint(live_stack, engineer, backfill, staging, target):
    run = services.request_run(engineer, backfill, staging, {"dsn": target}, dry_run=True)
    run = finished(run)
    assert run.status == RunStatus.SUCCEEDED
    assert written(target) == 0 and run.checkpoint is None
    assert "would convert 10 campaigns" in log_of(run) and "Dry run" in log_of(run)


def test_a_checkpoint_is_durable_once_it_returns(live_stack, engineer, make_script, staging):
    script = make_script(
        "import os, signal\nimport backfill_sdk as bf\n"
        "channel = bf.connect('durable')\n"
        "channel.save_checkpoint({'after': 41, 'done': 41})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n", slug="durable")
    run = finished(services.request_run(engineer, script, staging, {}))
    assert run.status == RunStatus.FAILED and run.checkpoint == {"after": 41, "done": 41}


def test_the_standalone_mode_resumes_from_its_checkpoint_file(target, tmp_path):
    script = tmp_path / "campaigns.py"
    script.write_text(BACKFILL)
    params = tmp_path / "params.json"
    params.write_text(f'{{"dsn": "{target}", "label": "terminal", "delay": 0.05}}')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")},
           "PYTHONPATH": str(ROOT), "BACKFILL_CHECKPOINT_FILE": str(tmp_path / "campaigns.checkpoint.json")}
    first = subprocess.Popen([sys.executable, str(script), str(params)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for(lambda: written(target) >= 60)
    first.kill()
    first.wait()
    checkpoint = (tmp_path / "campaigns.checkpoint.json").read_text()
    assert '"done"' in checkpoint

    second = subprocess.run([sys.executable, str(script), str(params)], env=env, capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 0, second.stderr
    assert "Resuming from the checkpoint" in second.stderr and "rows (100%)" in second.stderr
    assert_every_row_written_exactly_once(target)


# --- controls, resume and one-at-a-time by the doors users take ------------------------------------------

def api_for(user):
    from rest_framework.test import APIClient

    from scripts_app.models import ApiToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(user, 't')[1]}")
    return client


def running(engineer, backfill, staging):
    run = services.request_run(engineer, backfill, staging, {"dsn": "unused"})
    assert run.transition(RunStatus.RUNNING)
    return run


def test_the_api_pauses_resumes_and_changes_batch_size_and_sleep(engineer, make_user, backfill, staging):
    run = running(engineer, backfill, staging)
    api = api_for(engineer)
    assert api.post(f"/api/runs/{run.pk}/pause/").json()["paused"] is True
    assert api.post(f"/api/runs/{run.pk}/resume/").json()["paused"] is False
    changed = api.patch(f"/api/runs/{run.pk}/", {"batch_size": 250, "sleep_seconds": 0.5}, format="json").json()
    assert (changed["batch_size"], changed["sleep_seconds"]) == (250, 0.5)
    bad = api.patch(f"/api/runs/{run.pk}/", {"batch_size": 0, "sleep_seconds": -1}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"batch_size", "sleep_seconds"}
    viewer = make_user("viewer")
    from guardian.shortcuts import assign_perm

    assign_perm("scripts_app.view_script", viewer, backfill)
    assert api_for(viewer).post(f"/api/runs/{run.pk}/pause/").status_code == 403
    assert not Run.objects.get(pk=run.pk).paused


def test_the_run_page_controls_a_running_backfill(client, engineer, backfill, staging):
    run = running(engineer, backfill, staging)
    client.force_login(engineer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'value="pause"' in page and "Batch size" in page
    client.post(f"/runs/{run.pk}/controls/", {"action": "pause"})
    assert Run.objects.get(pk=run.pk).paused
    client.post(f"/runs/{run.pk}/controls/", {"action": "set", "batch_size": "50", "sleep_seconds": "2"})
    run.refresh_from_db()
    assert (run.batch_size, run.sleep_seconds) == (50, 2.0)
    response = client.post(f"/runs/{run.pk}/controls/", {"action": "set", "batch_size": "-3"}, follow=True)
    assert "batch_size" in response.content.decode() and Run.objects.get(pk=run.pk).batch_size == 50


def test_resume_needs_a_checkpoint_and_a_finished_run_and_happens_once(client, engineer, backfill, staging):
    run = running(engineer, backfill, staging)
    api = api_for(engineer)
    assert api.post(f"/api/runs/{run.pk}/resume-from-checkpoint/").status_code == 400  # still running
    run.transition(RunStatus.FAILED)
    refused = api.post(f"/api/runs/{run.pk}/resume-from-checkpoint/")
    assert refused.status_code == 400 and "no checkpoint" in str(refused.json())
    Run.objects.filter(pk=run.pk).update(checkpoint={"after": 40, "done": 40}, batch_size=25)
    client.force_login(engineer)
    response = client.post(f"/runs/{run.pk}/resume-from-checkpoint/")
    resumed = Run.objects.get(resumed_from=run)
    assert response["Location"] == f"/runs/{resumed.pk}/"
    assert (resumed.version, resumed.params, resumed.environment, resumed.batch_size) == (
        run.version, run.params, run.environment, 25)
    assert api.post(f"/api/runs/{run.pk}/resume-from-checkpoint/").status_code == 400  # once only
    assert resumed.checkpoint == {"after": 40, "done": 40}  # its own, from the start
    services.cancel_run(resumed, engineer)  # it never started: the run may be resumed again
    assert api.post(f"/api/runs/{run.pk}/resume-from-checkpoint/").status_code == 201
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f"Resumed by <a href=\"/runs/{resumed.pk}/\">run #{resumed.pk}</a>" in page


def test_a_one_at_a_time_script_refuses_a_second_run_in_the_same_environment(engineer, backfill, staging,
                                                                               production):
    backfill.one_at_a_time = True
    backfill.save()
    first = services.request_run(engineer, backfill, staging, {"dsn": "x"})
    response = api_for(engineer).post("/api/runs/", {"script": "campaigns", "environment": "staging",
                                                     "params": {"dsn": "x"}}, format="json")
    assert response.status_code == 400
    assert f"run #{first.pk} is queued" in response.json()["environment"][0]
    backfill.allowed_environments.add(production)
    assert services.request_run(engineer, backfill, production, {"dsn": "x"}).status == RunStatus.QUEUED
    services.cancel_run(first, engineer)
    assert services.request_run(engineer, backfill, staging, {"dsn": "x"}).status == RunStatus.QUEUED


def test_whatever_a_script_writes_on_the_control_pipe_never_breaks_its_run(engineer, make_script, staging):
    from tests.conftest import work_queue

    script = make_script(
        "import os\n"
        "fd = int(os.environ['BACKFILL_CONTROL_FDS'].split(',')[1])\n"
        "for line in [b'not json', b'[1, 2]', b'{\"type\": \"checkpoint\", \"id\": 1, \"value\": NaN}',\n"
        "             b'{\"type\": \"checkpoint\", \"id\": 2, \"value\": \"a\\\\u0000b\"}',\n"
        "             b'{\"type\": \"batch\", \"rows\": \"many\", \"seconds\": 1}',\n"
        "             b'{\"type\": \"progress\", \"progress\": {\"done\": 1e400}}',\n"
        "             b'{\"type\": \"paused\", \"reason\": \"x\\\\u0000y\"}', b'x' * 3_000_000,\n"
        "             b'{\"type\": \"checkpoint\", \"id\": 3, \"value\": {\"after\": 7}}']:\n"
        "    os.write(fd, line + b'\\n')\n"
        "print('wrote them all')\n", slug="noisy")
    run = services.request_run(engineer, script, staging, {})
    work_queue(staging.queue_name)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.status_detail
    assert run.checkpoint == {"after": 7} and run.pause_reason == "xy"
    assert "wrote them all" in log_of(run)
