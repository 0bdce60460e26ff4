"""Log ingestion: 100 MB of script output through a real worker, against the same script writing to a file.

What it measures
    SCRIPT below writes one million lines of 100 bytes each (99 characters and a newline), 100 MB.
    In each round:
    1. direct: `python script.py > file` (the worker's interpreter, a file in a temporary directory
       on the same disk as PostgreSQL), wall time around the process;
    2. worker: the same script as a Backfill run: `runs.services.request_run()` (the Run is
       enqueued on commit), then a real `manage.py backfill_worker --burst bench` subprocess, which
       forks a work horse that supervises the script and stores its output as LogChunk rows.
       Worker time = Run.finished_at - Run.started_at: from the horse's claim of the run to its final
       status (temp dir, spawn, reading, storing and publishing every chunk, the final flush).
       Also shown: wall time from just before request_run() to Run.finished_at, which adds the
       worker process's start-up (Django set-up), the dequeue and the fork.
    The ratio worker time / direct time (target: at most 1.5), then a check that every byte was
    stored: the sha256 of the run's LogChunk texts concatenated in seq order equals the sha256 of
    the direct file, seq runs 1..n without a gap, and Run.output_bytes is 100,000,000.
    The phases of the worker run (from started_at and the chunks' created_at) say where time goes.

How to run
    From the project root, with PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and Redis at
    127.0.0.1:6379:

        .venv/bin/python bench/log_ingestion.py [--rounds N]

    It needs no environment variables: it sets DEBUG=0 settings itself, drops and recreates the
    PostgreSQL database `backfill_bench`, flushes Redis database 14, and creates a superuser, an
    environment (queue `bench`) and the script. The database is left for inspection afterwards.
    Exit code 0 when every round stored every byte (whatever the times), 1 otherwise.
"""

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import common

LINES = 1_000_000
LINE_BYTES = 100
TOTAL_BYTES = LINES * LINE_BYTES
TARGET_RATIO = 1.5

SCRIPT = f'''\
import sys

write = sys.stdout.write
filler = "x" * {LINE_BYTES - 10}
for i in range({LINES}):
    write(f"{{i:08d}} {{filler}}\\n")
'''


def sha256_of_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def run_direct(source_path, out_path, workdir):
    """`python script.py > file`, without a shell; returns the wall time in seconds."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8"}
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(source_path)], stdout=out, env=env, check=True)
        elapsed = time.perf_counter() - t0
    return elapsed


def run_worker(user, environment, script, log_path):
    """Request a run, work it with a real burst worker; returns the finished Run and the request time."""
    from runs import services
    from runs.models import Run

    requested = datetime.now(UTC)
    run = services.request_run(user, script, environment, {})
    worker = common.start([sys.executable, "manage.py", "backfill_worker", "--burst", common.QUEUE], log_path)
    try:
        worker.wait(timeout=900)
    finally:
        common.stop(worker)
    if worker.returncode != 0:
        raise RuntimeError(f"the worker exited with code {worker.returncode}; see {log_path}")
    return Run.objects.get(pk=run.pk), requested


def check_stored(run, expected_sha256):
    """Every byte, in order: returns (problems, number of chunks, phase timestamps of the chunks)."""
    from runs.models import LogChunk

    digest = hashlib.sha256()
    expected_seq, first_at, last_at = 1, None, None
    rows = LogChunk.objects.filter(run=run).order_by("seq").values_list("seq", "text", "created_at")
    problems = []
    for seq, text, created_at in rows.iterator(chunk_size=64):
        if seq != expected_seq and not problems:
            problems.append(f"chunk seq {seq} where {expected_seq} was expected")
        expected_seq = seq + 1
        digest.update(text.encode())
        first_at = first_at or created_at
        last_at = created_at
    chunks = expected_seq - 1
    if digest.hexdigest() != expected_sha256:
        problems.append(f"sha256 of the stored chunks {digest.hexdigest()} != direct file {expected_sha256}")
    if run.status != "succeeded":
        problems.append(f"run status {run.status}: {run.status_detail}")
    if run.output_bytes != TOTAL_BYTES:
        problems.append(f"Run.output_bytes = {run.output_bytes}, expected {TOTAL_BYTES}")
    if run.output_truncated:
        problems.append("the run's output was truncated")
    return problems, chunks, first_at, last_at


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="direct + worker pairs to run (default 3)")
    args = parser.parse_args()

    common.configure()
    common.reset_state()
    user, environment, script = common.create_fixtures("log-flood", SCRIPT)
    print("Log ingestion benchmark: 1,000,000 lines x 100 bytes = 100 MB")
    common.print_machine()

    results, failed = [], False
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        tmp = Path(tmp)
        source_path = tmp / "script.py"
        source_path.write_text(script.current_version.source)
        direct_out = tmp / "direct.out"
        for round_no in range(1, args.rounds + 1):
            direct_s = run_direct(source_path, direct_out, tmp)
            size = direct_out.stat().st_size
            if size != TOTAL_BYTES:
                raise RuntimeError(f"the direct run wrote {size} bytes, not {TOTAL_BYTES}")
            expected = sha256_of_file(direct_out)
            direct_out.unlink()

            run, requested = run_worker(user, environment, script, tmp / f"worker-{round_no}.log")
            problems, chunks, first_at, last_at = check_stored(run, expected)
            worker_s = (run.finished_at - run.started_at).total_seconds()
            wall_s = (run.finished_at - requested).total_seconds()
            result = {
                "direct": direct_s, "worker": worker_s, "wall": wall_s, "ratio": worker_s / direct_s,
                "wall_ratio": wall_s / direct_s, "chunks": chunks,
                "to_claim": (run.started_at - requested).total_seconds(),
                "to_first_chunk": (first_at - run.started_at).total_seconds() if first_at else None,
                "streaming": (last_at - first_at).total_seconds() if first_at else None,
                "after_last_chunk": (run.finished_at - last_at).total_seconds() if last_at else None,
            }
            results.append(result)
            print(f"\nround {round_no}: run #{run.pk}, {chunks} chunks, sha256 {expected[:16]}...")
            print(f"  direct (python script.py > file):            {direct_s:7.2f} s")
            print(f"  worker (Run.finished_at - Run.started_at):   {worker_s:7.2f} s   ratio {result['ratio']:.2f}")
            print(f"  wall (request_run -> Run.finished_at):       {wall_s:7.2f} s   ratio {result['wall_ratio']:.2f}")
            print(f"  phases: request -> claimed {result['to_claim']:.2f} s (worker start-up, dequeue, fork); "
                  f"claimed -> first chunk {result['to_first_chunk']:.3f} s; first -> last chunk "
                  f"{result['streaming']:.2f} s; last chunk -> finished {result['after_last_chunk']:.3f} s")
            if problems:
                failed = True
                print("  STORED BYTES DO NOT MATCH: " + "; ".join(problems))
            else:
                print("  every byte stored: sha256 matches, seq 1..n contiguous, output_bytes = 100,000,000")

    def med(key):
        return statistics.median(r[key] for r in results)

    print(f"\nmedian of {len(results)} round(s): direct {med('direct'):.2f} s, worker {med('worker'):.2f} s, "
          f"ratio {med('ratio'):.2f} (target <= {TARGET_RATIO}: {'met' if med('ratio') <= TARGET_RATIO else 'MISSED'})"
          f"; wall from request {med('wall'):.2f} s, ratio {med('wall_ratio'):.2f}")
    print("bytes: " + ("MISMATCH in at least one round" if failed else "all stored, every round"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
