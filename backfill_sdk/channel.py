"""Where a backfill's checkpoints, progress and controls go: the service's supervisor, or a local file.

The service starts a script with BACKFILL_CONTROL_FDS="<read fd>,<write fd>": two pipes of JSON
lines. The supervisor sends `init` (checkpoint to resume from, dry-run flag, controls), then
`control` whenever someone changes them, and `ack` once a checkpoint is committed. The script sends
`checkpoint`, `progress`, `batch` and `paused`.
"""

import json
import os
import select
import sys
import time
from dataclasses import dataclass, fields

CONTROL_FDS = "BACKFILL_CONTROL_FDS"
CHECKPOINT_FILE = "BACKFILL_CHECKPOINT_FILE"
ACK_TIMEOUT_SECONDS = 60


@dataclass
class Controls:
    """What can change while a backfill runs. `max_error_rate` is the share of failed batches, among
    the recent ones, above which the backfill pauses itself."""

    batch_size: int = 1000
    sleep: float = 0.0
    paused: bool = False
    cancel: bool = False
    max_error_rate: float = 0.5

    def update(self, values):
        names = {f.name for f in fields(self)}
        for name, value in (values or {}).items():
            if name in names and value is not None:
                setattr(self, name, type(getattr(self, name))(value))


class ChannelError(RuntimeError):
    """The supervisor did not answer (it is gone, or the pipe broke)."""


class ServiceChannel:
    """The pipes to the supervisor of a run of the service."""

    standalone = False

    def __init__(self, read_fd, write_fd):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.buffer = b""
        self.next_id = 0
        self.acks = set()
        self.controls = Controls()
        init = self.wait_for(lambda m: m.get("type") == "init", ACK_TIMEOUT_SECONDS)
        self.checkpoint = init.get("checkpoint")
        self.dry_run = bool(init.get("dry_run"))
        self.initial_controls = init.get("controls") or {}  # only what the run itself sets
        self.controls.update(self.initial_controls)

    def send(self, message):
        data = (json.dumps(message, default=str) + "\n").encode()
        while data:
            try:
                data = data[os.write(self.write_fd, data):]
            except BrokenPipeError as exc:
                raise ChannelError("the supervisor closed the control channel") from exc

    def poll(self, timeout=0.0):
        """Read what the supervisor sent within `timeout` seconds; apply controls, note acks."""
        messages = []
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if not ready:
                return messages
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise ChannelError("the supervisor closed the control channel")
            self.buffer += chunk
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                if message.get("type") == "control":
                    self.controls.update(message.get("controls"))
                elif message.get("type") == "ack":
                    if message.get("error"):
                        raise ChannelError(message["error"])
                    self.acks.add(message.get("id"))
                messages.append(message)
            if messages or time.monotonic() >= deadline:
                return messages

    def wait_for(self, wanted, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.poll(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                if wanted(message):
                    return message
        raise ChannelError(f"no answer from the supervisor in {timeout} s")

    def save_checkpoint(self, value):
        """Returns once the supervisor has committed the checkpoint to the service's database."""
        self.wait_committed(self.send_checkpoint(value))

    def send_checkpoint(self, value, batch=None, progress=None):
        """Send a checkpoint (with the batch's statistics and the progress, in one message) without
        waiting: `wait_committed` with the returned id before writing anything more."""
        self.next_id += 1
        self.send({"type": "checkpoint", "id": self.next_id, "value": value, "batch": batch, "progress": progress})
        self.checkpoint = value
        return self.next_id

    def wait_committed(self, ident):
        if ident is None:
            return
        if ident not in self.acks:
            self.wait_for(lambda m: m.get("type") == "ack" and m.get("id") == ident, ACK_TIMEOUT_SECONDS)
        self.acks.discard(ident)

    def report(self, batch, progress):
        """A batch's statistics and the progress, without a checkpoint (a dry run)."""
        self.send({"type": "batch", **batch, "progress": progress})

    def pause(self, reason):
        """Pause the run (it shows the reason); wait until someone resumes or cancels it."""
        self.controls.paused = True
        self.send({"type": "paused", "reason": reason})

    def wait_while_paused(self):
        while self.controls.paused and not self.controls.cancel:
            self.poll(timeout=0.5)


class LocalChannel:
    """A terminal run: the checkpoint in a JSON file, progress printed, controls as given."""

    standalone = True

    def __init__(self, path, dry_run, controls):
        self.path = path
        self.dry_run = dry_run
        self.controls = controls
        self.checkpoint = None
        if os.path.exists(path):
            with open(path) as f:
                self.checkpoint = json.load(f)
            print(f"Resuming from the checkpoint in {path}: {self.checkpoint}", file=sys.stderr)

    def poll(self, timeout=0.0):
        if timeout:
            time.sleep(timeout)
        return []

    def send_checkpoint(self, value, batch=None, progress=None):
        self.save_checkpoint(value)
        self.report(batch, progress)

    def wait_committed(self, ident):
        pass

    def save_checkpoint(self, value):
        """Written to a temporary file, flushed to disk, then renamed: the file is always whole."""
        temporary = f"{self.path}.tmp"
        with open(temporary, "w") as f:
            json.dump(value, f, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        self.checkpoint = value

    def report(self, batch, progress):
        done, total, rate = progress["done"], progress["total"], progress["rate"]
        share = f" ({done / total:.0%})" if total else ""
        eta = f", about {max(total - done, 0) / rate:.0f} s left" if total and rate else ""
        print(f"{done:,}{f' / {total:,}' if total else ''} rows{share}, {rate:,.0f} rows/s{eta}", file=sys.stderr)

    def pause(self, reason):
        """Nobody can resume a terminal run: it stops, and the next run resumes from the checkpoint."""
        print(f"Paused: {reason}. Run it again to go on from the checkpoint.", file=sys.stderr)
        self.controls.cancel = True

    def wait_while_paused(self):
        pass


def connect(name="backfill", **controls):
    """The service's channel when run by Backfill, else a local one (checkpoint in NAME.checkpoint.json,
    or the file named by BACKFILL_CHECKPOINT_FILE; dry run with --dry-run or BACKFILL_DRY_RUN=1)."""
    fds = os.environ.get(CONTROL_FDS)
    if fds:
        read_fd, write_fd = (int(fd) for fd in fds.split(","))
        channel = ServiceChannel(read_fd, write_fd)
        for key, value in controls.items():  # the script's own defaults, unless the run set them
            if value is not None and key not in channel.initial_controls:
                setattr(channel.controls, key, value)
        return channel
    dry_run = os.environ.get("BACKFILL_DRY_RUN") == "1" or "--dry-run" in sys.argv
    base = Controls()
    base.update({k: v for k, v in controls.items() if v is not None})
    return LocalChannel(os.environ.get(CHECKPOINT_FILE) or f"{name}.checkpoint.json", dry_run, base)

