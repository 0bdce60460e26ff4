"""Lost runs: the reaper marks runs whose worker died, cleans RQ's record, and a lost run's script stops."""

import os
import re
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job

from runs import services
from runs.models import LogChunk, Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)

LONG_SCRIPT = "import os, time\nprint('pid', os.getpid(), flush=True)\nfor i in range(600):\n    time.sleep(0.1)\n"


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def script_pid(run):
    """The pid the script printed when it started."""
    def printed():
        text = "".join(LogChunk.objects.filter(run=run).values_list("text", flat=True))
        match = re.search(r"pid (\d+)", text)
        return match and int(match.group(1))

    return wait_for(printed)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_a_run_whose_worker_was_killed_becomes_lost_and_its_job_is_forgotten(
        live_stack, engineer, make_script, staging, settings, clean_redis):
    run = services.request_run(engineer, make_script(LONG_SCRIPT, timeout=300), staging, {})
    pid = script_pid(run)
    run.refresh_from_db()
    horse = int(run.worker.rsplit(":", 1)[1])
    os.kill(horse, signal.SIGKILL)  # the supervising work horse dies, as with a machine gone
    wait_for(lambda: not alive(pid))  # its script dies with it (parent-death signal)

    settings.BACKFILL_LOST_AFTER_SECONDS = 2
    assert services.reap_lost_runs() == []  # the heartbeat is still fresh
    time.sleep(2.5)
    assert [r.pk for r in services.reap_lost_runs()] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.LOST and "no heartbeat" in run.status_detail
    with pytest.raises(NoSuchJobError):
        Job.fetch(services.job_id(run), connection=clean_redis)
    assert services.reap_lost_runs() == []  # once only


def test_a_live_run_is_left_alone_and_a_run_marked_lost_stops_its_script(live_stack, engineer, make_script,
                                                                         staging, settings):
    run = services.request_run(engineer, make_script(LONG_SCRIPT, timeout=300), staging, {})
    pid = script_pid(run)
    settings.BACKFILL_LOST_AFTER_SECONDS = 30
    assert services.reap_lost_runs() == []
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING

    # A reaper that judges the heartbeat too old (say, a clock far ahead): the supervisor stops the script.
    assert [r.pk for r in services.reap_lost_runs(now=timezone.now() + timedelta(hours=1))] == [run.pk]
    wait_for(lambda: not alive(pid))
    run.refresh_from_db()
    assert run.status == RunStatus.LOST
