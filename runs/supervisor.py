"""Runs one script version in a child process and supervises it (DESIGN section 4, step 3).

The child gets a private temporary directory and an environment built from scratch: the
environment's secrets, the parameters and BACKFILL_* variables, never the worker's own environment.
Its output is read without blocking, masked, stored in chunks and published chunk by chunk.
"""

import asyncio
import codecs
import contextlib
import fcntl
import json
import os
import queue
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone

from runs import services
from runs.control import CONTROL_FIELDS, SDK_DIR, ControlChannel
from runs.models import LogChunk, Run, RunStatus

MASK = "********"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
POLL_SECONDS = 0.25
PIPE_BYTES = 1 << 20  # the child writes into a 1 MiB pipe (Linux's default ceiling for a user)
READ_PAUSE_SECONDS = 0.002  # lets output gather between reads: far fewer wake-ups, same latency
STORE_QUEUE_CHUNKS = 64  # chunks waiting to be stored before the reader (and so the script) waits
ORPHAN_PIPE_GRACE_SECONDS = 1.0
SETPRIV = shutil.which("setpriv")


class SecretMasker:
    """Replaces secret values in a stream of text, even when one is split across two reads."""

    def __init__(self, values):
        self.values = sorted({v for v in values if v}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, self.values))) if self.values else None

    def mask(self, text):
        return self.pattern.sub(MASK, text) if self.pattern else text

    def safe_cut(self, text):
        """Index up to which `text` can be emitted: past it, a secret might still be completing."""
        if not self.pattern:
            return len(text)
        cut = len(text)
        longest = len(self.values[0])
        for start in range(max(0, len(text) - longest + 1), len(text)):
            tail = text[start:]
            if any(v.startswith(tail) for v in self.values):
                cut = start
                break
        for match in self.pattern.finditer(text):
            if match.start() < cut < match.end():
                cut = match.end()
        return cut


class Publisher:
    """Sends channel-layer messages from a thread of its own, in order, without blocking the reader."""

    def __init__(self, group):
        self.group = group
        self.loop = asyncio.new_event_loop()
        self.queue = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"publish-{group}", daemon=True)
        self.thread.start()
        self.ready.wait()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        self.ready.set()
        self.loop.run_until_complete(self._drain())

    async def _drain(self):
        layer = get_channel_layer()
        while (message := await self.queue.get()) is not None:
            try:
                await layer.group_send(self.group, message)
            except Exception:  # watchers catch up from the database on reconnect
                services.log.exception("could not publish to %s", self.group)

    def send(self, message):
        self.loop.call_soon_threadsafe(self.queue.put_nowait, message)

    def close(self):
        """Send what is queued, then stop. Safe to call twice."""
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, None)
            self.thread.join(timeout=10)
        if not self.thread.is_alive() and not self.loop.is_closed():
            self.loop.close()  # channels_redis closes this loop's Redis connections with it


class ChunkStore:
    """Stores a run's chunks from a thread of its own, a batch per INSERT, and then publishes them.

    The thread that reads the script's output never waits for the database, so the script does
    not block on a full pipe while a chunk commits. A chunk is published only once it is stored:
    a watcher that reconnects finds in the database everything it was sent. When storing falls
    behind by STORE_QUEUE_CHUNKS chunks the reader waits, and so does the script.
    """

    def __init__(self, run_id, publisher):
        self.run_id = run_id
        self.publisher = publisher
        self.queue = queue.Queue(maxsize=STORE_QUEUE_CHUNKS)
        self.error = None
        self.thread = threading.Thread(target=self._run, name=f"store-run-{run_id}", daemon=True)
        self.thread.start()

    def put(self, seq, text):
        while True:
            self._raise_if_failed()
            if not self.thread.is_alive():
                raise RuntimeError("the thread storing the run's output has stopped")
            try:
                self.queue.put((seq, text), timeout=1)
                return
            except queue.Full:
                continue

    def close(self):
        """Wait until every chunk put so far is stored and published. Safe to call twice."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self):
        if self.error is not None:
            raise RuntimeError("could not store the run's output") from self.error

    def _run(self):
        """Store batch after batch until close(); after a failure, only empty the queue."""
        try:
            done = False
            while not done:
                batch = [self.queue.get()]
                while len(batch) < STORE_QUEUE_CHUNKS and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                done = batch[-1] is None
                if self.error is None:
                    try:
                        self._store([item for item in batch if item is not None])
                    except Exception as exc:
                        self.error = exc
        finally:
            connection.close()

    def _store(self, batch):
        if not batch:
            return
        LogChunk.objects.bulk_create([LogChunk(run_id=self.run_id, seq=seq, text=text) for seq, text in batch])
        for seq, text in batch:
            self.publisher.send({"type": "run.chunk", "seq": seq, "text": text})


class LogWriter:
    """Buffers a run's output and cuts it into masked chunks: every ~100 ms, or per whole 64 KiB."""

    def __init__(self, run_id, masker, publisher):
        self.masker = masker
        self.store = ChunkStore(run_id, publisher)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.pending = ""
        self.pending_since = None
        self.seq = 0
        self.total_bytes = 0
        self.stored_bytes = 0
        self.truncated = False
        self.max_bytes = settings.BACKFILL_MAX_OUTPUT_BYTES
        self.chunk_size = settings.BACKFILL_LOG_FLUSH_BYTES

    def feed(self, data):
        self.total_bytes += len(data)
        if self.truncated:
            return
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        self.pending += self.decoder.decode(data).replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
        if len(self.pending) >= self.chunk_size:
            self.flush(whole_chunks_only=True)

    def flush_if_due(self, now):
        if self.pending_since is not None and now - self.pending_since >= settings.BACKFILL_LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self, final=False, whole_chunks_only=False):
        """Emit what can be emitted; a size-triggered flush keeps the part short of a whole chunk."""
        if final:
            self.pending += self.decoder.decode(b"", final=True)
        cut = len(self.pending) if final else self.masker.safe_cut(self.pending)
        if whole_chunks_only:
            cut -= cut % self.chunk_size
        text, self.pending = self.masker.mask(self.pending[:cut]), self.pending[cut:]
        self.pending_since = time.monotonic() if self.pending else None
        for start in range(0, len(text), self.chunk_size):
            if self.truncated:
                break
            self.seq += 1
            self.store.put(self.seq, self._within_cap(text[start:start + self.chunk_size]))

    def close(self):
        """Store the rest of the output and wait until all of it is stored."""
        self.flush(final=True)
        self.store.close()

    def _within_cap(self, text):
        size = len(text.encode())
        if self.stored_bytes + size <= self.max_bytes:
            self.stored_bytes += size
            return text
        room = self.max_bytes - self.stored_bytes
        kept = text.encode()[:room].decode(errors="ignore")
        self.stored_bytes = self.max_bytes
        self.truncated = True
        return kept + (f"\n[output truncated: the run wrote more than {self.max_bytes} bytes; "
                       "the rest was not kept]\n")


def param_env_name(name):
    return "BACKFILL_PARAM_" + re.sub(r"[^A-Z0-9]", "_", str(name).upper())


def param_env_value(value):
    return value if isinstance(value, str) else json.dumps(value)


def child_environment(run, workdir, params_file, params):
    """Built from scratch: nothing of the worker's own environment reaches the script."""
    env = {secret.name: secret.get_value() for secret in run.environment.secrets.all()}
    env.update(
        PATH=SAFE_PATH, HOME=workdir, TMPDIR=workdir, LANG="C.UTF-8", LC_ALL="C.UTF-8",
        PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
        BACKFILL_RUN_ID=str(run.pk), BACKFILL_SCRIPT=run.script.slug,
        BACKFILL_SCRIPT_VERSION=str(run.version.number), BACKFILL_ENVIRONMENT=run.environment.slug,
        BACKFILL_DRY_RUN="1" if run.dry_run else "0", BACKFILL_PARAMS_FILE=params_file,
    )
    env.update({param_env_name(k): param_env_value(v) for k, v in params.items()})
    return env


def command_for(run, script_path):
    if run.script.language == "bash":
        return [run.environment.bash_path or "/bin/bash", script_path]
    return [run.environment.python_path or sys.executable, script_path]


def write_private(path, content):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def prepare_workdir(run):
    """A private (0700) directory with the script, its uploaded files and its parameters file.

    Returns (directory, script path, parameters file, parameters): an uploaded file's parameter is
    its path in the directory.
    """
    workdir = tempfile.mkdtemp(prefix=f"backfill-run-{run.pk}-", dir=settings.BACKFILL_TEMP_DIR)
    script_path = os.path.join(workdir, "script.sh" if run.script.language == "bash" else "script.py")
    write_private(script_path, run.version.source.encode())
    params = dict(run.params)
    for upload in run.files.all():
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(upload.filename)).lstrip(".") or "upload"
        path = os.path.join(workdir, f"upload-{upload.pk}-{safe_name}")
        write_private(path, bytes(upload.content))
        params[upload.field_name] = path
    params_file = os.path.join(workdir, "params.json")
    write_private(params_file, json.dumps(params).encode())
    os.symlink(SDK_DIR, os.path.join(workdir, "backfill_sdk"))  # `import backfill_sdk` works beside the script
    return workdir, script_path, params_file, params


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def widen_pipe(fd):
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # a lower pipe-max-size: the default 64 KiB pipe still works
        pass


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Outcome:
    status: str
    exit_code: int | None
    detail: str


class Supervision:
    """The loop that reads output, heartbeats, applies cancel and timeout, until the child is gone."""

    def __init__(self, run, proc, writer, control):
        self.run = run
        self.proc = proc
        self.writer = writer
        self.control = control
        self.started = time.monotonic()
        self.deadline = self.started + run.timeout_seconds
        self.stop_reason = None
        self.stop_at = None
        self.killed = False
        self.next_poll = 0.0
        self.next_heartbeat = 0.0
        self.exited_at = None

    def run_loop(self):
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        widen_pipe(fd)
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            selector.register(self.control.from_script, selectors.EVENT_READ)
            open_pipe = True
            while True:
                for key, _ in selector.select(timeout=POLL_SECONDS / 2 if open_pipe else POLL_SECONDS):
                    if key.fd == self.control.from_script:
                        if not self.control.readable():
                            selector.unregister(key.fd)
                        continue
                    data = os.read(fd, PIPE_BYTES)
                    if data:
                        self.writer.feed(data)
                        time.sleep(READ_PAUSE_SECONDS)
                    else:
                        selector.unregister(fd)
                        open_pipe = False
                now = time.monotonic()
                self.writer.flush_if_due(now)
                self.tick(now)
                if self.proc.poll() is not None:
                    if not open_pipe:
                        break
                    self.exited_at = self.exited_at or now
                    if now - self.exited_at > ORPHAN_PIPE_GRACE_SECONDS:
                        # The script exited but a child of it still holds the output open.
                        kill_group(self.proc.pid, signal.SIGKILL)
                    if now - self.exited_at > 2 * ORPHAN_PIPE_GRACE_SECONDS:
                        break  # a child that left the process group: stop reading it
            if self.control.open:
                self.control.readable()  # what the script said last
        kill_group(self.proc.pid, signal.SIGKILL)  # leave no stray children behind
        self.control.close()
        self.writer.close()
        return self.outcome()

    def tick(self, now):
        if now >= self.next_poll:
            self.next_poll = now + POLL_SECONDS
            self.poll_run(now)
        if self.stop_reason is None and now >= self.deadline:
            self.stop(f"Timed out after {self.run.timeout_seconds} s.", RunStatus.TIMED_OUT, now)
        if self.stop_at and not self.killed and now >= self.stop_at + settings.BACKFILL_KILL_GRACE_SECONDS:
            kill_group(self.proc.pid, signal.SIGKILL)
            self.killed = True

    def poll_run(self, now):
        fields = {}
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + settings.BACKFILL_HEARTBEAT_SECONDS
            fields = {"heartbeat_at": timezone.now(), "output_bytes": self.writer.total_bytes}
        rows = Run.objects.filter(pk=self.run.pk)
        if fields:
            rows.update(**fields)
        status, cancel_at, cancelled_by, *controls = rows.values_list(
            "status", "cancel_requested_at", "cancel_requested_by__username", *CONTROL_FIELDS).first()
        self.control.flush()
        self.control.controls_changed(tuple(controls))
        if self.stop_reason is not None:
            return
        if status == RunStatus.LOST:  # the reaper gave up on this run: it must not go on unwatched
            self.stop("Stopped: the run was marked lost (no heartbeat in time).", RunStatus.LOST, now)
        elif cancel_at:
            self.stop(f"Cancelled by {cancelled_by or 'a user'}.", RunStatus.CANCELLED, now)

    def stop(self, detail, status, now):
        """SIGTERM the script's whole process group; SIGKILL follows after the grace period."""
        self.stop_reason = (status, detail)
        self.stop_at = now
        kill_group(self.proc.pid, signal.SIGTERM)

    def outcome(self):
        code = self.proc.wait()
        if self.stop_reason:
            status, detail = self.stop_reason
        elif code == 0:
            status, detail = RunStatus.SUCCEEDED, "Exited with code 0."
        elif code < 0:
            status, detail = RunStatus.FAILED, f"Killed by signal {signal_name(-code)}."
        else:
            status, detail = RunStatus.FAILED, f"Exited with code {code}."
        if self.writer.truncated:
            detail += " Output was truncated."
        return Outcome(status, code, detail)


def start_child(run, workdir, script_path, params_file, params, control):
    """The script in its own session (process group), no shell, stdout and stderr on one pipe.

    Where `setpriv` exists, the child is also killed if its supervisor dies (parent-death signal).
    """
    command = command_for(run, script_path)
    if shutil.which(command[0]) is None:
        raise FileNotFoundError(f"No executable interpreter at {command[0]}")
    if SETPRIV:
        command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
    fds, fds_variable = control.child_fds()
    env = {**child_environment(run, workdir, params_file, params), "BACKFILL_CONTROL_FDS": fds_variable}
    return subprocess.Popen(
        command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, close_fds=True, pass_fds=fds,
    )


def supervise(run):
    """Execute `run` (already claimed as running) to its end and record how it ended.

    Whatever fails here, the script's process group is killed and the run ends as failed: a run
    never stays `running` because its supervisor broke.
    """
    publisher = Publisher(services.group_name(run.pk))
    workdir = proc = writer = control = None
    try:
        writer = LogWriter(run.pk, SecretMasker(s.get_value() for s in run.environment.secrets.all()), publisher)
        workdir, script_path, params_file, params = prepare_workdir(run)
        control = ControlChannel(run, publisher)
        try:
            proc = start_child(run, workdir, script_path, params_file, params, control)
        except (OSError, ValueError) as exc:
            writer.feed(f"Could not start the script: {exc}\n".encode())
            writer.close()
            control.close()
            outcome = Outcome(RunStatus.FAILED, None, f"Could not start: {getattr(exc, 'strerror', None) or exc}.")
        else:
            control.started(Run.objects.filter(pk=run.pk).values_list(*CONTROL_FIELDS).first())
            with proc:
                outcome = Supervision(run, proc, writer, control).run_loop()
        publisher.close()  # every chunk reaches watchers before the final status does
        services.finish_run(
            run, outcome.status, exit_code=outcome.exit_code, status_detail=outcome.detail[:500],
            output_bytes=writer.total_bytes, output_truncated=writer.truncated, heartbeat_at=timezone.now(),
        )
    except BaseException as exc:
        if proc is not None:
            kill_group(proc.pid, signal.SIGKILL)
        if writer is not None:
            with contextlib.suppress(Exception):  # what was stored stays; the failure is `exc`
                writer.store.close()
        publisher.close()
        services.finish_run(run, RunStatus.FAILED, status_detail=f"The run's supervisor failed: {exc!r}"[:500],
                            heartbeat_at=timezone.now())
        raise
    finally:
        if control is not None:
            control.close()  # no pipe is left open, whatever failed
        publisher.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return run
