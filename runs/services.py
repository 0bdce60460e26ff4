"""What can happen to a run: request, start, finish, cancel; and reading its log."""

import logging
import os
import socket
from datetime import timedelta

import redis
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from audit.services import record
from runs import notify
from runs.models import FINISHED, LogChunk, Run, RunFile, RunStatus
from runs.signals import run_awaits_approval, run_cancelled_before_start
from scripts_app.policy import can_run_script, can_view_script, scripts_visible_to
from ui_builder.services import finite, spec_for, validate_params

log = logging.getLogger(__name__)

JOB_TIMEOUT_MARGIN_SECONDS = 120
REASON_MAX_LENGTH = 2000


def group_name(run_id):
    return f"run-{run_id}"


def status_message(run):
    return {
        "type": "run.status",
        "status": run.status,
        "status_display": run.get_status_display(),
        "exit_code": run.exit_code,
        "detail": run.status_detail,
        "finished": run.is_finished,
        "duration": run.duration.total_seconds() if run.duration else None,
        "output_bytes": run.output_bytes,
    }


def publish_status(run):
    """Tell the run page's sockets about a status change, once the change is committed."""

    transaction.on_commit(lambda: publish(run, status_message(run)))


def change_status(run, to, only_from=None, **fields):
    """The one way a run changes status: guarded by the state machine, then pushed to watchers."""
    won = run.transition(to, only_from, **fields)
    if won:
        publish_status(run)
        if to in FINISHED:
            notify.ended(run)
    return won


def redis_connection():
    return redis.Redis.from_url(settings.REDIS_URL)


def push_job(run):
    """Put the run's job on its environment's queue; a run that cannot be queued fails, saying why."""
    timeout = run.timeout_seconds + settings.BACKFILL_KILL_GRACE_SECONDS + JOB_TIMEOUT_MARGIN_SECONDS
    try:
        Queue(run.environment.queue_name, connection=redis_connection()).enqueue(
            "runs.jobs.execute_run", run.pk, job_id=job_id(run), job_timeout=int(timeout),
            result_ttl=3600, failure_ttl=7 * 24 * 3600,
        )
    except redis.RedisError as exc:
        log.exception("could not queue run %s", run.pk)
        detail = f"Could not be queued: the job queue is unreachable ({exc.__class__.__name__})."
        if change_status(run, RunStatus.FAILED, {RunStatus.QUEUED}, status_detail=detail):
            record("run.finished", run, status=RunStatus.FAILED, detail=detail)


def enqueue(run):
    """Queue the run once the transaction that made it commits (never a job for a rolled-back row)."""
    transaction.on_commit(lambda: push_job(run))


def contains_nul(value):
    """NUL cannot be stored by PostgreSQL nor passed in a process's environment."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def request_run(user, script, environment, params, dry_run=False, reason="", files=None):
    """Create a run of the script's current version if `user` may run it there.

    Parameters are checked against the script's form where it has one (and the form is kept with
    the run); files are the form's uploads. Where the script or environment requires approval the
    run waits (`awaiting_approval`) and `run_awaits_approval` is sent inside the transaction;
    otherwise it is queued.
    """
    if not can_run_script(user, script, environment):
        raise PermissionDenied(f"You may not run {script} in {environment}.")
    if script.current_version is None:
        raise ValidationError({"script": "This script has no source yet."})
    params, uploads, spec = checked_params(script, params, files, dry_run)
    needs_approval = script.requires_approval_in(environment)
    if needs_approval and not reason.strip():
        raise ValidationError({"reason": f"Runs in {environment} need approval: say why, for the approvers."})
    if contains_nul(reason) or len(reason) > REASON_MAX_LENGTH:
        raise ValidationError({"reason": f"At most {REASON_MAX_LENGTH} characters, without NUL."})
    files = [RunFile.from_upload(user, name, upload) for name, upload in uploads.items()]
    params |= {f.field_name: f.describe() for f in files}
    with transaction.atomic():
        refuse_a_second_run(script, environment)
        run = Run.objects.create(
            script=script, version=script.current_version, environment=environment, params=params,
            requested_by=user, dry_run=dry_run, reason=reason.strip(), timeout_seconds=script.timeout_seconds,
            form_snapshot=spec, status=RunStatus.AWAITING_APPROVAL if needs_approval else RunStatus.QUEUED,
        )
        for file in files:
            file.run = run
        RunFile.objects.bulk_create(files)
        submit(run, user, needs_approval)
    return run


def submit(run, user, needs_approval, **detail):
    """In the transaction that made the run: audit the request, then wait for approval or queue it."""
    record("run.requested", run, actor=user, script=run.script.slug, environment=run.environment.slug,
           version=run.version.number, params=run.params, dry_run=run.dry_run, **detail)
    if needs_approval:
        run_awaits_approval.send(sender=Run, run=run)
    else:
        enqueue(run)


ACTIVE = {RunStatus.AWAITING_APPROVAL, RunStatus.QUEUED, RunStatus.RUNNING}


def refuse_a_second_run(script, environment):
    """For a one-at-a-time script: the script's row is locked, so two requests at once cannot both pass."""
    if not script.one_at_a_time:
        return
    type(script).objects.select_for_update().filter(pk=script.pk).first()
    active = Run.objects.filter(script=script, environment=environment, status__in=ACTIVE).order_by("id").first()
    if active is not None:
        raise ValidationError({"environment": f"{script} runs one at a time in {environment}, and run #{active.pk} "
                                              f"is {active.get_status_display().lower()}: wait for it to end."})


def checked_params(script, params, files, dry_run):
    """(parameters, uploads, form spec): validated by the script's form, or a free JSON object without one."""
    spec = spec_for(script)
    if spec is None:
        if not isinstance(params, dict):
            raise ValidationError({"params": "Parameters must be a JSON object."})
        uploads = {}
    else:
        params, uploads = validate_params(spec, params, files)
        if dry_run and not spec["supports_dry_run"]:
            raise ValidationError({"dry_run": "This script does not offer a dry run."})
    if contains_nul(params):
        raise ValidationError({"params": "Parameters cannot contain the NUL character (\\u0000)."})
    if not finite(params):
        raise ValidationError({"params": "Numbers must be finite (no NaN or infinity)."})
    return params, uploads, spec


RESUMABLE = {RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST, RunStatus.TIMED_OUT}


def resume_run(run, user):
    """A new run of the same version, parameters and environment that starts from `run`'s last durable
    checkpoint (approvals apply again where the environment requires them). The source run's row is
    locked: two resumes at once make one run."""
    if not can_run_script(user, run.script, run.environment):
        raise PermissionDenied(f"You may not run {run.script} in {run.environment}.")
    needs_approval = run.script.requires_approval_in(run.environment)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        refuse_resume(run)
        refuse_a_second_run(run.script, run.environment)
        resumed = Run.objects.create(
            script=run.script, version=run.version, environment=run.environment, params=run.params,
            requested_by=user, dry_run=run.dry_run, reason=run.reason or f"Resumes run #{run.pk}.",
            timeout_seconds=run.timeout_seconds, form_snapshot=run.form_snapshot, resumed_from=run,
            checkpoint=run.checkpoint, batch_size=run.batch_size, sleep_seconds=run.sleep_seconds,
            status=RunStatus.AWAITING_APPROVAL if needs_approval else RunStatus.QUEUED,
        )
        RunFile.objects.bulk_create(RunFile(run=resumed, uploaded_by=f.uploaded_by, field_name=f.field_name,
                                            filename=f.filename, content=f.content, size=f.size, sha256=f.sha256)
                                    for f in run.files.all())
        submit(resumed, user, needs_approval, resumes=run.pk)
    return resumed


def refuse_resume(run):
    if run.status not in RESUMABLE:
        raise ValidationError({"run": f"A {run.get_status_display().lower()} run cannot be resumed."})
    if run.checkpoint is None:
        raise ValidationError({"run": "This run saved no checkpoint: start it again instead."})
    taken = live_resumption(run)
    if taken is not None:
        raise ValidationError({"run": f"Run #{taken.pk} already resumes this run."})


def live_resumption(run):
    """The run that resumes `run`, unless it ended without ever starting (rejected, expired, withdrawn...):
    its checkpoint is then still `run`'s, and `run` may be resumed again."""
    return run.resumed_by.exclude(Q(started_at__isnull=True) & Q(status__in=FINISHED)).order_by("-pk").first()


def may_resume(user, run):
    return (run.status in RESUMABLE and run.checkpoint is not None and live_resumption(run) is None
            and can_run_script(user, run.script, run.environment))


def set_controls(run, user, **changes):
    """Pause, resume, batch size, sleep between batches: stored on the run; its supervisor passes them on."""
    if not may_cancel(user, run):
        raise PermissionDenied("You may not control this run.")
    if run.is_finished:
        raise ValidationError({"run": "This run has ended."})
    fields = {}
    if "paused" in changes:
        fields |= {"paused": bool(changes["paused"]), "pause_reason": "" if not changes["paused"]
                   else f"Paused by {user}."}
    for name, low, high in (("batch_size", 1, 1_000_000), ("sleep_seconds", 0, 3600)):
        if changes.get(name) is not None:
            value = changes[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ValidationError({name: f"Between {low} and {high:,}."})
            fields[name] = value
    Run.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()
    record("run.controls_changed", run, actor=user, **{k: v for k, v in fields.items() if k != "pause_reason"})
    publish_controls(run)
    return run


def publish_controls(run):
    message = {"type": "run.controls", "paused": run.paused, "pause_reason": run.pause_reason,
               "batch_size": run.batch_size, "sleep_seconds": run.sleep_seconds}
    transaction.on_commit(lambda: publish(run, message))


def publish(run, message):
    try:
        async_to_sync(get_channel_layer().group_send)(group_name(run.pk), message)
    except Exception:  # the page catches up on reload
        log.exception("could not publish to run %s", run.pk)


def release_approved_run(run):
    """An approved run goes to its queue, exactly as it was requested; False if it no longer waits."""
    won = change_status(run, RunStatus.QUEUED, {RunStatus.AWAITING_APPROVAL}, status_detail="Approved.")
    if won:
        enqueue(run)
    return won


def end_unapproved_run(run, status, detail):
    """A rejected or expired request ends its run before it ever starts."""
    won = change_status(run, status, {RunStatus.AWAITING_APPROVAL}, status_detail=detail[:500])
    if won:
        record("run.finished", run, status=status, detail=run.status_detail)
    return won


def may_cancel(user, run):
    """A run waiting for approval is withdrawn by its requester only; other runs are stopped by those
    who may run the script in that environment."""
    if run.status == RunStatus.AWAITING_APPROVAL:
        return user.is_authenticated and user.pk == run.requested_by_id
    return can_run_script(user, run.script, run.environment)


def cancel_run(run, user):
    """Cancel a run that has not started; ask a running one to stop (its supervisor kills it)."""
    if not may_cancel(user, run):
        raise PermissionDenied("Only the requester can withdraw a run that waits for approval."
                               if run.status == RunStatus.AWAITING_APPROVAL else "You may not cancel this run.")
    not_started = {RunStatus.AWAITING_APPROVAL, RunStatus.QUEUED}
    with transaction.atomic():  # the approval request is withdrawn with it, or neither changes
        if change_status(run, RunStatus.CANCELLED, not_started,
                         status_detail=f"Cancelled by {user} before it started."):
            record("run.cancelled", run, actor=user, before_start=True)
            run_cancelled_before_start.send(sender=Run, run=run, user=user)
            return run
    asked = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, cancel_requested_at=None).update(
        cancel_requested_at=timezone.now(), cancel_requested_by=user
    )
    if asked:
        record("run.cancelled", run, actor=user, before_start=False)
    run.refresh_from_db()
    return run


def start_run(run):
    """Claim a queued run for this worker; False when another worker (or a cancel) got there first."""
    now = timezone.now()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    won = change_status(run, RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker)
    if won:
        record("run.started", run, worker=worker)
    return won


def finish_run(run, status, **fields):
    """Record how a running run ended; False if something else (the reaper) ended it first."""
    won = change_status(run, status, **fields)
    if won:
        record("run.finished", run, status=status, exit_code=run.exit_code, detail=run.status_detail,
               output_bytes=run.output_bytes)
    return won


def reap_lost_runs(now=None):
    """Mark `lost` every running run whose heartbeat is older than BACKFILL_LOST_AFTER_SECONDS (its
    worker was killed or its machine is gone), and drop RQ's record of its job. Returns the runs."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.BACKFILL_LOST_AFTER_SECONDS)
    stale = Run.objects.filter(status=RunStatus.RUNNING).filter(
        Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, started_at__lt=limit))
    lost = []
    for run in stale:
        seen = timezone.localtime(run.heartbeat_at or run.started_at)
        detail = (f"Lost: no heartbeat from its worker ({run.worker or 'unknown'}) since {seen:%Y-%m-%d %H:%M:%S}; "
                  "the worker stopped or its machine is gone.")
        if change_status(run, RunStatus.LOST, {RunStatus.RUNNING}, status_detail=detail[:500]):
            record("run.finished", run, status=RunStatus.LOST, detail=run.status_detail)
            forget_job(run)
            lost.append(run)
    return lost


def forget_job(run):
    """Remove the run's job from RQ (its queue and registries), which still counts it as started."""
    try:
        Job.fetch(job_id(run), connection=redis_connection()).delete()
    except (NoSuchJobError, redis.RedisError):
        log.warning("no RQ job to clean up for run %s", run.pk)


def job_id(run):
    return f"run-{run.pk}"


def visible_run_or_none(user, run_id):
    run = Run.objects.select_related("script", "environment", "version", "requested_by").filter(pk=run_id).first()
    if run is None or not can_view_script(user, run.script):
        return None
    return run


def chunks_after(run_id, after_seq, limit=1000):
    """Stored chunks with seq > after_seq, oldest first (keyset on seq)."""
    return list(
        LogChunk.objects.filter(run_id=run_id, seq__gt=after_seq).order_by("seq").values("seq", "text")[:limit]
    )


def log_tail(run_id, max_bytes):
    """The newest chunks whose total text stays within max_bytes (at least one), oldest first."""
    picked, total = [], 0
    newest_first = LogChunk.objects.filter(run_id=run_id).order_by("-seq").values("seq", "text")
    for chunk in newest_first.iterator(chunk_size=16):  # stream: chunks are up to 64 KiB each
        total += len(chunk["text"])
        if picked and total > max_bytes:
            break
        picked.append(chunk)
    picked.reverse()
    return picked


async def full_log_bytes(run_id, batch=100):
    """The whole log, read in keyset batches (so memory stays flat), for a streamed download."""
    after = 0
    while rows := await sync_to_async(chunks_after)(run_id, after, batch):
        for row in rows:
            yield row["text"].encode()
        after = rows[-1]["seq"]


def runs_visible_to(user):
    return Run.objects.filter(script__in=scripts_visible_to(user).values("pk"))


def run_history(user, script=None, environment=None, status="", requested_by="", before=None, page_size=50):
    """A page of visible runs, newest first, keyset-paginated on id; returns (runs, next `before`)."""
    runs = runs_visible_to(user).select_related("script", "environment", "requested_by", "version")
    if script:
        runs = runs.filter(script=script)
    if environment:
        runs = runs.filter(environment=environment)
    if status:
        runs = runs.filter(status=status)
    if requested_by:
        runs = runs.filter(requested_by__username=requested_by)
    if before:
        runs = runs.filter(pk__lt=before)
    page = list(runs.order_by("-pk")[: page_size + 1])
    next_before = page[page_size - 1].pk if len(page) > page_size else None
    return page[:page_size], next_before
