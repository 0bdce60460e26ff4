"""The run's state machine: guarded transitions, races, what cannot change after creation."""

import threading

import pytest
from django.db import connection

from runs import services
from runs.models import ImmutableRunFields, Run, RunStatus
from tests.conftest import grant_runner


@pytest.fixture
def queued_run(engineer, make_script, staging):
    return services.request_run(engineer, make_script("print(1)\n"), staging, {"a": 1})


@pytest.mark.django_db
def test_a_finished_run_cannot_be_started_or_finished_again(queued_run):
    assert queued_run.transition(RunStatus.RUNNING)
    assert queued_run.transition(RunStatus.SUCCEEDED, exit_code=0)
    assert queued_run.finished_at is not None
    for status in (RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.QUEUED):
        assert not queued_run.transition(status)
    queued_run.refresh_from_db()
    assert queued_run.status == RunStatus.SUCCEEDED and queued_run.exit_code == 0


@pytest.mark.django_db
def test_queued_cannot_skip_to_a_result(queued_run):
    assert not queued_run.transition(RunStatus.SUCCEEDED)
    assert Run.objects.get(pk=queued_run.pk).status == RunStatus.QUEUED


@pytest.mark.django_db
def test_what_a_run_is_cannot_change_after_creation(queued_run, production):
    run = Run.objects.get(pk=queued_run.pk)
    run.params = {"a": 2}
    with pytest.raises(ImmutableRunFields):
        run.save()
    run = Run.objects.get(pk=queued_run.pk)
    run.environment = production
    with pytest.raises(ImmutableRunFields):
        run.save()
    assert Run.objects.get(pk=queued_run.pk).params == {"a": 1}


@pytest.mark.django_db
def test_a_run_keeps_the_version_it_was_created_with(queued_run):
    script = queued_run.script
    script.save_source("print(2)\n")
    queued_run.refresh_from_db()
    assert queued_run.version.source == "print(1)\n"
    assert script.current_version.number == 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_run_only_one_wins(queued_run):
    """Two threads, each with its own PostgreSQL connection, claim the same run at the same moment."""
    barrier = threading.Barrier(8)
    wins = []

    def claim():
        run = Run.objects.get(pk=queued_run.pk)
        barrier.wait()
        wins.append(services.start_run(run))
        connection.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert Run.objects.get(pk=queued_run.pk).status == RunStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_cancel_racing_a_worker_start_has_one_winner(queued_run, engineer):
    barrier = threading.Barrier(2)
    results = {}

    def start():
        run = Run.objects.get(pk=queued_run.pk)
        barrier.wait()
        results["started"] = services.start_run(run)
        connection.close()

    def cancel():
        run = Run.objects.get(pk=queued_run.pk)
        barrier.wait()
        services.cancel_run(run, engineer)
        connection.close()

    threads = [threading.Thread(target=start), threading.Thread(target=cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run = Run.objects.get(pk=queued_run.pk)
    if results["started"]:
        assert run.status == RunStatus.RUNNING and run.cancel_requested_at is not None
    else:
        assert run.status == RunStatus.CANCELLED


@pytest.mark.django_db
def test_nobody_runs_what_they_were_not_given(make_user, make_script, staging, production):
    script = make_script("print(1)\n", environments=[staging, production])
    stranger = make_user("stranger")
    with pytest.raises(services.PermissionDenied):
        services.request_run(stranger, script, staging, {})
    staging_only = make_user("staging-only")
    grant_runner(staging_only, script, staging)
    with pytest.raises(services.PermissionDenied):
        services.request_run(staging_only, script, production, {})
    assert services.request_run(staging_only, script, staging, {}).status == RunStatus.QUEUED
    assert Run.objects.count() == 1


@pytest.mark.django_db
def test_parameters_must_be_an_object(engineer, make_script, staging):
    with pytest.raises(services.ValidationError):
        services.request_run(engineer, make_script("print(1)\n"), staging, ["not", "an", "object"])
