"""Runs executed by a real RQ worker, in real child processes."""

import json
import os
import signal
import time

import pytest
from django.test import override_settings

from runs import services
from runs.models import LogChunk, Run, RunStatus
from tests.conftest import download_log, work_queue

pytestmark = pytest.mark.django_db(transaction=True)


def run_script(engineer, script, env, params=None, **kwargs):
    run = services.request_run(engineer, script, env, params or {}, **kwargs)
    work_queue(env.queue_name)
    run.refresh_from_db()
    return run


def full_log(run):
    return "".join(LogChunk.objects.filter(run=run).order_by("seq").values_list("text", flat=True))


def test_successful_run_records_output_exit_code_and_timing(engineer, make_script, staging):
    script = make_script("import sys\nprint('hello from the script')\nprint('to stderr', file=sys.stderr)\n")
    run = run_script(engineer, script, staging)
    assert run.status == RunStatus.SUCCEEDED
    assert run.exit_code == 0
    assert run.started_at and run.finished_at and run.finished_at >= run.started_at
    log = full_log(run)
    assert "hello from the script\n" in log and "to stderr\n" in log
    assert run.output_bytes == len(log.encode())
    assert run.version == script.current_version


def test_failing_script_is_failed_with_its_exit_code(engineer, make_script, staging):
    run = run_script(engineer, make_script("import sys\nprint('boom')\nsys.exit(3)\n"), staging)
    assert run.status == RunStatus.FAILED
    assert run.exit_code == 3
    assert "code 3" in run.status_detail


def test_bash_script_runs_with_bash(engineer, make_script, staging):
    script = make_script('echo "shell $BASH_VERSION" | cut -c1-5\n', language="bash")
    run = run_script(engineer, script, staging)
    assert run.status == RunStatus.SUCCEEDED
    assert full_log(run) == "shell\n"


def test_child_environment_is_built_from_scratch(engineer, make_script, staging, secret, monkeypatch):
    monkeypatch.setenv("WORKER_ONLY_VARIABLE", "leak")
    script = make_script("import json, os\nprint(json.dumps(dict(os.environ)))\n")
    run = run_script(engineer, script, staging, {"name": "Ada", "batch size": 500, "dry": True})
    env = json.loads(full_log(run).replace("********", "MASKED"))
    for name in ("DATABASE_URL", "SECRET_KEY", "SECRETS_ENCRYPTION_KEY", "REDIS_URL", "WORKER_ONLY_VARIABLE"):
        assert name not in env
    assert os.environ["DATABASE_URL"] not in json.dumps(env)
    assert env["API_TOKEN"] == "MASKED"  # the secret reached the script, and its value is masked in output
    assert env["BACKFILL_RUN_ID"] == str(run.pk)
    assert env["BACKFILL_ENVIRONMENT"] == "staging"
    assert env["BACKFILL_PARAM_NAME"] == "Ada"
    assert env["BACKFILL_PARAM_BATCH_SIZE"] == "500"
    assert env["BACKFILL_PARAM_DRY"] == "true"
    assert env["BACKFILL_DRY_RUN"] == "0"


def test_parameters_arrive_as_a_json_file_and_never_through_a_shell(engineer, make_script, staging, tmp_path):
    marker = tmp_path / "pwned"
    script = make_script('cat "$BACKFILL_PARAMS_FILE"; echo; echo "$BACKFILL_PARAM_NAME"\n', language="bash")
    hostile = f"x; touch {marker}; $(touch {marker})"
    run = run_script(engineer, script, staging, {"name": hostile, "n": [1, 2]})
    lines = full_log(run).splitlines()
    assert json.loads(lines[0]) == {"name": hostile, "n": [1, 2]}
    assert lines[1] == hostile
    assert not marker.exists()


def test_secret_values_are_masked_even_when_split_across_writes(engineer, make_script, staging, secret):
    script = make_script(
        "import sys, time\n"
        "s = 'sup3r-s3cret-value-42'\n"
        "print('whole:', s)\n"
        "sys.stdout.write('split: ' + s[:7]); sys.stdout.flush(); time.sleep(0.3)\n"
        "sys.stdout.write(s[7:] + '\\n'); sys.stdout.flush()\n"
        "print('not a secret: sup3r-s3')\n"
    )
    run = run_script(engineer, script, staging)
    log = full_log(run)
    assert "sup3r-s3cret" not in log and "value-42" not in log
    assert "whole: ********\n" in log and "split: ********\n" in log
    assert "not a secret: sup3r-s3\n" in log


def test_timeout_stops_the_script(engineer, make_script, staging):
    script = make_script("import time\nprint('start', flush=True)\ntime.sleep(60)\n", timeout=1)
    started = time.monotonic()
    run = run_script(engineer, script, staging)
    assert time.monotonic() - started < 15
    assert run.status == RunStatus.TIMED_OUT
    assert "Timed out after 1 s" in run.status_detail
    assert full_log(run) == "start\n"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that nobody reaped yet is dead for our purpose
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_cancel_kills_a_script_that_ignores_sigterm_and_its_children(engineer, make_script, staging, tmp_path):
    pids_file = tmp_path / "pids"
    script = make_script(
        f"""
import os, signal, subprocess, time
signal.signal(signal.SIGTERM, lambda *a: print("ignoring SIGTERM", flush=True))
child = subprocess.Popen(["sleep", "300"])
with open({str(pids_file)!r}, "w") as f:
    f.write(f"{{os.getpid()}} {{child.pid}}")
print("started", flush=True)
while True:
    time.sleep(0.1)
"""
    )
    run = services.request_run(engineer, script, staging, {})

    def cancel_when_started():
        while not pids_file.exists() or not pids_file.read_text():
            time.sleep(0.05)
        services.cancel_run(Run.objects.get(pk=run.pk), engineer)

    import threading

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    started = time.monotonic()
    work_queue(staging.queue_name)
    canceller.join()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "Cancelled by engineer" in run.status_detail
    assert run.exit_code == -signal.SIGKILL
    assert time.monotonic() - started < 20
    script_pid, child_pid = map(int, pids_file.read_text().split())
    assert not pid_alive(script_pid)
    assert not pid_alive(child_pid)
    assert "ignoring SIGTERM" in full_log(run)


def test_cancel_before_start_means_it_never_runs(engineer, make_script, staging, tmp_path):
    marker = tmp_path / "ran"
    run = services.request_run(engineer, make_script(f"open({str(marker)!r}, 'w')\n"), staging, {})
    services.cancel_run(run, engineer)
    work_queue(staging.queue_name)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert not marker.exists()


@override_settings(BACKFILL_MAX_OUTPUT_BYTES=10_000)
def test_output_past_the_cap_is_truncated_with_a_marker_and_the_run_goes_on(engineer, make_script, staging, tmp_path):
    marker = tmp_path / "finished"
    script = make_script(f"for i in range(5000):\n    print(f'line {{i:05d}}')\nopen({str(marker)!r}, 'w')\n")
    run = run_script(engineer, script, staging)
    assert run.status == RunStatus.SUCCEEDED
    assert marker.exists()
    assert run.output_truncated
    assert run.output_bytes == 5000 * 11
    log = full_log(run)
    assert log.startswith("line 00000\nline 00001\n")
    assert "[output truncated" in log
    assert len(log.encode()) < 10_000 + 200


def test_chunks_are_ordered_contiguous_and_whole(engineer, make_script, staging):
    script = make_script(
        "import sys, time\n"
        "for i in range(20000):\n"
        "    print(f'{i:06d} ' + 'x' * 40)\n"
        "    if i % 5000 == 0:\n"
        "        sys.stdout.flush(); time.sleep(0.25)\n"
    )
    run = run_script(engineer, script, staging)
    chunks = list(LogChunk.objects.filter(run=run).order_by("seq").values_list("seq", "text"))
    assert [seq for seq, _ in chunks] == list(range(1, len(chunks) + 1))
    assert len(chunks) >= 5  # flushed by time and by size, not one row per line nor one blob
    assert all(len(text.encode()) <= 64 * 1024 for _, text in chunks)
    expected = "".join(f"{i:06d} " + "x" * 40 + "\n" for i in range(20000))
    assert "".join(text for _, text in chunks) == expected
    assert [c["seq"] for c in services.chunks_after(run.pk, 3, 2)] == [4, 5]


def test_non_utf8_output_is_kept_readable(engineer, make_script, staging):
    script = make_script("import sys\nsys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff end\\n')\n")
    run = run_script(engineer, script, staging)
    assert full_log(run) == "café \ufffd end\n"


def test_nul_in_output_is_stored_as_a_replacement_character(engineer, make_script, staging):
    """PostgreSQL text cannot hold NUL: the byte is shown as \ufffd, like any unreadable byte."""
    script = make_script("import sys\nsys.stdout.buffer.write(b'before\\x00after\\n')\n")
    run = run_script(engineer, script, staging)
    assert run.status == RunStatus.SUCCEEDED
    assert full_log(run) == "before\ufffdafter\n"


def test_a_script_that_cannot_start_fails_with_a_clear_reason(engineer, make_script, staging):
    staging.python_path = "/nonexistent/python"
    staging.save()
    run = run_script(engineer, make_script("print(1)\n"), staging)
    assert run.status == RunStatus.FAILED
    assert "Could not start" in run.status_detail
    assert "Could not start the script" in full_log(run)


def test_a_broken_supervisor_still_ends_the_run(engineer, make_script, staging):
    """An environment secret that cannot be decrypted (e.g. after a key change) fails the run, loudly."""
    from scripts_app.models import Secret

    Secret.objects.create(environment=staging, name="BROKEN", encrypted_value=b"not a fernet token")
    run = run_script(engineer, make_script("print(1)\n"), staging)
    assert run.status == RunStatus.FAILED
    assert "supervisor failed" in run.status_detail


@pytest.fixture
def failing_chunk_inserts():
    """A PostgreSQL trigger that refuses every stored chunk, as a full disk or a lost server would."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION refuse_chunk() RETURNS trigger AS $$ BEGIN "
                       "RAISE EXCEPTION 'no space left for chunks'; END $$ LANGUAGE plpgsql")
        cursor.execute("CREATE TRIGGER refuse_chunk BEFORE INSERT ON runs_logchunk "
                       "FOR EACH ROW EXECUTE FUNCTION refuse_chunk()")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_chunk ON runs_logchunk; DROP FUNCTION refuse_chunk()")


def test_output_that_cannot_be_stored_fails_the_run_and_stops_the_script(
        engineer, make_script, staging, failing_chunk_inserts):
    script = make_script("import time\nfor i in range(600):\n    print('line', i, flush=True)\n    time.sleep(0.05)\n",
                         timeout=60)
    started = time.monotonic()
    run = run_script(engineer, script, staging)
    assert time.monotonic() - started < 20
    assert run.status == RunStatus.FAILED
    assert "could not store the run's output" in run.status_detail
    assert not LogChunk.objects.filter(run=run).exists()


def test_a_child_that_leaves_the_process_group_does_not_hold_the_run(engineer, make_script, staging):
    script = make_script("setsid sleep 30 &\necho started\n", language="bash", timeout=20)
    started = time.monotonic()
    run = run_script(engineer, script, staging)
    assert time.monotonic() - started < 10
    assert run.status == RunStatus.SUCCEEDED
    assert full_log(run) == "started\n"


def test_nul_in_parameters_is_refused(engineer, make_script, staging):
    with pytest.raises(services.ValidationError):
        services.request_run(engineer, make_script("print(1)\n"), staging, {"x": ["a\x00b"]})
    assert not Run.objects.exists()


def test_a_run_that_cannot_be_queued_fails_and_says_why(engineer, make_script, staging):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        run = services.request_run(engineer, make_script("print(1)\n"), staging, {})
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "could not be queued" in run.status_detail.lower()


def test_a_secret_printed_by_a_script_is_in_no_page_api_answer_admin_page_or_download(
        engineer, make_script, staging, secret, client, django_user_model):
    from rest_framework.test import APIClient

    from scripts_app.models import ApiToken

    run = run_script(engineer, make_script("import os\nprint('token is', os.environ['API_TOKEN'])\n"), staging)
    assert full_log(run) == "token is ********\n"
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x"))
    pages = [f"/runs/{run.pk}/", "/runs/", "/scripts/demo/", "/tools/",
             f"/admin/runs/run/{run.pk}/change/", "/admin/runs/logchunk/", "/admin/audit/auditevent/",
             f"/admin/scripts_app/secret/{secret.pk}/change/", f"/admin/scripts_app/environment/{staging.pk}/change/"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiToken.issue(engineer, 'tests')[1]}")
    answers = [api.get(url) for url in (f"/api/runs/{run.pk}/", f"/api/runs/{run.pk}/log/", "/api/scripts/demo/",
                                        "/api/scripts/")]
    responses = [client.get(url) for url in pages] + answers
    for response in responses:
        assert response.status_code == 200, response
        assert b"sup3r-s3cret" not in response.content
    response, download = download_log(engineer, run)
    assert response.status_code == 200 and download == b"token is ********\n"
