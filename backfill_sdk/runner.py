"""The loop of a backfill: fetch a chunk, apply it (retrying), checkpoint, report, obey the controls."""

import collections
import random
import signal
import sys
import time
import traceback

from backfill_sdk.channel import connect


class BatchError(Exception):
    """Raised by `apply` for a chunk that must not be retried (counted as an error at once)."""


class IncompleteBackfill(Exception):
    """Some chunks failed: raised once the others are done. The checkpoint stays before the first failed
    chunk, so a resumed run tries them again (and redoes, harmlessly, the idempotent ones after it)."""


def run(source, apply, *, name="backfill", batch_size=None, sleep=None, max_error_rate=None, retries=3,
        backoff_seconds=0.5, window=10, channel=None):
    """Apply `apply(rows, dry_run)` to every chunk of `source`, from the checkpoint on; returns a summary.

    Between chunks: the batch size and sleep are read from the controls (changed live from the run page),
    a pause waits, a cancel (or SIGTERM) stops after the chunk in hand. A chunk whose `apply` raises is
    retried `retries` times with exponential backoff and jitter, then counted as an error and skipped; when
    the share of failed chunks among the last `window` passes `max_error_rate`, the run pauses itself.
    The checkpoint never moves past a chunk that failed, and IncompleteBackfill is raised at the end: a
    resumed run tries those chunks again. In a dry run nothing is checkpointed: `apply` gets dry_run=True
    and must write nothing.
    """
    channel = channel or connect(name, batch_size=batch_size, sleep=sleep, max_error_rate=max_error_rate)
    controls = channel.controls
    stop_on_sigterm(controls)
    start = channel.checkpoint or {}
    after, done = start.get("after"), start.get("done", 0)
    left = source.count(after)
    total = None if left is None else done + left
    recent = collections.deque(maxlen=window)
    errors = batches = 0
    began = time.monotonic()
    if channel.dry_run:
        print("Dry run: computing what would change, writing nothing.", file=sys.stderr)
    # At most one checkpoint is in flight: the next chunk is read and applied while the supervisor commits
    # it, and the one after waits for it. After a crash, at most the last two chunks are done again, which
    # the idempotent write makes harmless.
    pending = None
    while True:
        channel.poll()
        channel.wait_while_paused()
        if controls.cancel:
            print(f"Stopped on request after {done:,} rows; the next run resumes from here.", file=sys.stderr)
            break
        rows = source.fetch(after, max(1, controls.batch_size))
        if not rows:
            break
        failed, seconds = apply_with_retries(apply, rows, channel.dry_run, retries, backoff_seconds)
        after = source.key_after(rows, after)
        done += len(rows)
        batches += 1
        errors += failed
        batch = {"rows": len(rows), "seconds": round(seconds, 4), "errors": int(failed)}
        progress = {"done": done, "total": total, "rate": done / max(time.monotonic() - began, 1e-6)}
        if channel.dry_run or errors:  # after a failed chunk the checkpoint stays before it
            channel.report(batch, progress)
        else:
            channel.wait_committed(pending)
            pending = channel.send_checkpoint({"after": after, "done": done}, batch, progress)
        recent.append(failed)
        if too_many_errors(recent, window, controls.max_error_rate):
            channel.pause(f"{sum(recent)} of the last {len(recent)} batches failed, more than the "
                          f"{controls.max_error_rate:.0%} allowed")
            recent.clear()
        pause_between_batches(channel)
    channel.wait_committed(pending)
    summary = {"rows": done, "batches": batches, "failed_batches": errors, "cancelled": controls.cancel}
    if errors and not controls.cancel:
        raise IncompleteBackfill(f"{errors} of {batches} batches failed; the checkpoint is before the first of "
                                 "them: resume the run to try them again.")
    return summary


def apply_with_retries(apply, rows, dry_run, retries, backoff_seconds):
    """(failed, seconds): the chunk applied, or given up on after its retries (its traceback printed)."""
    started = time.monotonic()
    for attempt in range(retries + 1):
        try:
            apply(rows, dry_run)
            return False, time.monotonic() - started
        except BatchError as exc:
            error = exc
            break
        except Exception as exc:
            error = exc
            if attempt < retries:
                time.sleep(backoff_seconds * (2 ** attempt) * (0.5 + random.random()))
    print(f"A batch of {len(rows)} rows failed{f' after {retries} retries' if retries else ''}:", file=sys.stderr)
    traceback.print_exception(error, file=sys.stderr)
    return True, time.monotonic() - started


def too_many_errors(recent, window, limit):
    enough = min(window, 3)
    return len(recent) >= enough and sum(recent) / len(recent) > limit


def pause_between_batches(channel):
    """Sleep the throttle, still hearing pause and cancel (at most 0.2 s late)."""
    until = time.monotonic() + channel.controls.sleep
    while (left := until - time.monotonic()) > 0 and not channel.controls.cancel and not channel.controls.paused:
        channel.poll(timeout=min(left, 0.2))


def stop_on_sigterm(controls):
    """The service sends SIGTERM to cancel: finish the chunk in hand, checkpoint it, and stop."""
    def handler(signum, frame):
        controls.cancel = True

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
