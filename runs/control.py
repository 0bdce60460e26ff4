"""The supervisor's side of backfill_sdk's control channel (DESIGN section 5): two pipes of JSON lines.

script -> supervisor: `checkpoint` (committed, then acknowledged), `progress`, `batch`, `paused`.
supervisor -> script: `init` (the checkpoint to resume from, dry run, the run's controls), `control`
(whenever the run's controls change), `ack`. A script that does not use the SDK never reads or
writes them, and nothing waits on it.
"""

import errno
import json
import logging
import math
import os
import select
import time

from django.utils import timezone

from runs.models import BatchStat, Run
from runs.services import contains_nul
from ui_builder.services import finite

CONTROL_FIELDS = ("paused", "batch_size", "sleep_seconds")
MAX_CHECKPOINT_BYTES = 16 * 1024
MAX_LINE_BYTES = 1 << 20
log = logging.getLogger(__name__)
SDK_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backfill_sdk")


def refuse_constant(name):
    raise ValueError(f"{name} is not JSON the database can keep")


def number(value, kind):
    """A count or rate from the script, or None; ValueError for what is not a number (the message is dropped)."""
    if value is None:
        return None
    result = kind(value)
    if kind is int and not -2**63 <= result < 2**63:
        raise ValueError("out of range")
    if kind is float and not math.isfinite(result):
        raise ValueError("not finite")
    return result


def run_controls(values):
    """The run's control fields as the SDK names them; unset ones are left to the script's defaults."""
    paused, batch_size, sleep_seconds = values
    controls = {"paused": paused}
    if batch_size is not None:
        controls["batch_size"] = batch_size
    if sleep_seconds is not None:
        controls["sleep"] = sleep_seconds
    return controls


class ControlChannel:
    def __init__(self, run, publisher):
        self.run = run
        self.publisher = publisher
        self.to_script_read, self.to_script = os.pipe()
        self.from_script, self.from_script_write = os.pipe()
        os.set_blocking(self.to_script, False)
        os.set_blocking(self.from_script, False)
        self.unclosed = {self.to_script_read, self.to_script, self.from_script, self.from_script_write}
        self.buffer = b""
        self.batches = []
        self.batch_seq = BatchStat.objects.filter(run=run).count()
        self.progress = None
        self.progress_stored = False
        self.sent_controls = None
        self.open = True

    # --- set-up --------------------------------------------------------------------------------------

    def child_fds(self):
        """The descriptors the script inherits, and the variable that names them."""
        return (self.to_script_read, self.from_script_write), f"{self.to_script_read},{self.from_script_write}"

    def started(self, controls):
        """After the spawn: keep only our ends, and tell the script where it starts from."""
        self.close_fds(self.to_script_read, self.from_script_write)
        resume = Run.objects.filter(pk=self.run.pk).values_list("checkpoint", flat=True).first()
        self.sent_controls = controls
        self.send({"type": "init", "checkpoint": resume, "dry_run": self.run.dry_run,
                   "controls": run_controls(controls)}, wait_seconds=5)

    def close(self):
        self.close_fds(*self.unclosed)
        self.flush()

    def close_fds(self, *fds):
        for fd in fds:
            if fd in self.unclosed:
                self.unclosed.discard(fd)
                os.close(fd)

    # --- messages ------------------------------------------------------------------------------------

    def send(self, message, wait_seconds=0.5):
        """The whole message, or nothing more of it after `wait_seconds`: a script that does not read its
        controls (it does not use the SDK) cannot hold the supervisor up."""
        data = (json.dumps(message) + "\n").encode()
        deadline = time.monotonic() + wait_seconds
        while data:
            try:
                data = data[os.write(self.to_script, data):]
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [self.to_script], [], left)[1]:
                    log.warning("run %s: its script does not read its control channel", self.run.pk)
                    return
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    return
                raise

    def readable(self):
        """Read what the script sent; False once it closed its end."""
        try:
            data = os.read(self.from_script, 65536)
        except BlockingIOError:
            return True
        if not data:
            self.open = False
            return False
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.handle(line)
        if len(self.buffer) > MAX_LINE_BYTES:
            self.buffer = b""  # not a message of ours: drop it
        return True

    def handle(self, line):
        """One message from the script. A malformed one is ignored: what a script writes never breaks the run."""
        try:
            message = json.loads(line, parse_constant=refuse_constant)
            if isinstance(message, dict):
                self.apply(message)
        except Exception:  # malformed, too deep, not storable: dropped, and the run goes on
            log.warning("run %s: dropped a control message it could not use", self.run.pk, exc_info=True)

    def apply(self, message):
        kind = message.get("type")
        if kind == "checkpoint":
            self.add_batch(message.get("batch"))
        elif kind == "batch":
            self.add_batch(message)
        if isinstance(message.get("progress"), dict):
            progress = message["progress"]
            self.progress = {"progress_done": number(progress.get("done"), int),
                             "progress_total": number(progress.get("total"), int),
                             "progress_rate": number(progress.get("rate"), float)}
        if kind == "checkpoint":
            self.store_checkpoint(message)
        elif kind == "paused":
            reason = str(message.get("reason", "")).replace("\x00", "")[:500]
            Run.objects.filter(pk=self.run.pk).update(paused=True, pause_reason=reason)
            self.sent_controls = (True, *self.sent_controls[1:])
            self.publisher.send({"type": "run.controls", "paused": True, "pause_reason": reason})

    def add_batch(self, batch):
        if not isinstance(batch, dict):
            return
        rows, seconds, errors = (number(batch.get("rows", 0), int), number(batch.get("seconds", 0), float),
                                 number(batch.get("errors", 0), int))
        if min(rows, errors) < 0 or rows > 2**31 - 1 or errors > 2**31 - 1:
            raise ValueError("not a batch")
        self.batch_seq += 1
        self.batches.append(BatchStat(run_id=self.run.pk, seq=self.batch_seq, rows=rows, seconds=seconds,
                                      errors=errors))

    def store_checkpoint(self, message):
        """Committed (with the progress that came with it) before the script hears `ack`."""
        value = message.get("value")
        problem = ("it holds NUL" if contains_nul(value) else "it holds NaN or infinity" if not finite(value)
                   else "it is larger than 16 KiB" if len(json.dumps(value)) > MAX_CHECKPOINT_BYTES else None)
        if problem:
            self.send({"type": "ack", "id": message.get("id"), "error": f"checkpoint refused: {problem}"})
            return
        fields = {"checkpoint": message.get("value"), "checkpoint_at": timezone.now(), **(self.progress or {})}
        Run.objects.filter(pk=self.run.pk).update(**fields)
        self.send({"type": "ack", "id": message.get("id")})
        self.progress_stored = True

    def flush(self):
        """Store the batch statistics and progress gathered since the last flush; tell the run page."""
        try:
            self.store_gathered()
        except Exception:  # statistics are for watching: losing some never stops the run
            log.exception("run %s: could not store batch statistics", self.run.pk)
            self.batches, self.progress = [], None

    def store_gathered(self):
        if self.batches:
            BatchStat.objects.bulk_create(self.batches)
            batches = [{"seq": b.seq, "rows": b.rows, "seconds": b.seconds, "errors": b.errors} for b in self.batches]
            self.batches = []
            self.publisher.send({"type": "run.batches", "batches": batches})
        if self.progress:
            if not self.progress_stored:
                Run.objects.filter(pk=self.run.pk).update(**self.progress)
            self.publisher.send({"type": "run.progress", **self.progress})
            self.progress = None
        self.progress_stored = False

    def controls_changed(self, controls):
        """The run's controls as read by the supervisor's poll: those that changed are pushed to the script
        (only those: a new batch size must not undo a pause the script just made)."""
        if controls == self.sent_controls:
            return
        changed = {k: v for k, v in run_controls(controls).items()
                   if run_controls(self.sent_controls).get(k) != v}
        self.sent_controls = controls
        if changed:
            self.send({"type": "control", "controls": changed})
