"""Dispatch latency: from the API request to the first stored line of output, with a real daphne and worker.

What it measures
    A real daphne (`python -m daphne -b 127.0.0.1 -p PORT backfill_site.asgi:application`) and one
    real, idle worker (`manage.py backfill_worker bench`, forking a work horse per job) run as
    subprocesses. RUNS times, one after the other: POST /api/runs/ (a new HTTP connection, an API
    token of a superuser) for a script that prints one line, and the latency from just before the
    POST to the first LogChunk of that run being stored (LogChunk.created_at; the benchmark, daphne
    and the worker share the machine's clock). Before each POST it waits until the previous run is
    finished and the worker is idle again, so every run finds an idle worker. WARMUP runs first are
    shown but not counted. Reported: p50, p90, p99 (linear interpolation between the closest
    ranks, `statistics.quantiles(method="inclusive")`), max; target p50 at most 150 ms. The median
    of each phase (from the Run's created_at and started_at) says where the time goes.

How to run
    From the project root, with PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and Redis at
    127.0.0.1:6379:

        .venv/bin/python bench/dispatch_latency.py [--runs 50] [--warmup 2]

    It needs no environment variables: it sets DEBUG=0 settings itself, drops and recreates the
    PostgreSQL database `backfill_bench`, flushes Redis database 14, creates a superuser with an
    API token, an environment (queue `bench`) and the script, and stops daphne and the worker at
    the end. The database is left for inspection. Exit code 0 when every run succeeded, 1 otherwise.
"""

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import common

TARGET_P50_MS = 150
# One line of output; the time at which the script prints it splits the worker's side in two.
SCRIPT = 'import time\n\nprint(f"hello from backfill at {time.time():.6f}")\n'
POLL_SECONDS = 0.01


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"timed out waiting for {what}")


def worker_states(conn):
    from rq import Worker

    return [(conn.hget(key, "state") or b"").decode() for key in Worker.all_keys(connection=conn)]


def post_run(port, key, script_slug, environment_slug):
    body = json.dumps({"script": script_slug, "environment": environment_slug, "params": {}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/runs/", body=body,
                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    if response.status != 201:
        raise RuntimeError(f"POST /api/runs/ answered {response.status}: {payload[:500]!r}")
    return json.loads(payload)["id"]


def one_run(port, key, script, environment, redis_conn):
    """POST, then wait for the first chunk, the end of the run and an idle worker; returns the timings."""
    from rq.job import Job

    from runs.models import LogChunk, Run

    wait_until(lambda: worker_states(redis_conn) == ["idle"], 30, "an idle worker")
    before = datetime.now(UTC)
    run_id = post_run(port, key, script.slug, environment.slug)
    answered = datetime.now(UTC)
    first = wait_until(lambda: LogChunk.objects.filter(run_id=run_id, seq=1).values("created_at", "text").first(),
                       30, f"the first chunk of run {run_id}")
    run = wait_until(lambda: Run.objects.filter(pk=run_id, finished_at__isnull=False).first(), 60,
                     f"run {run_id} to finish")
    wait_until(lambda: worker_states(redis_conn) == ["idle"], 30, "the worker to be idle again")

    job = Job.fetch(f"run-{run_id}", connection=redis_conn)
    text = first["text"]
    printed = datetime.fromtimestamp(float(text.rsplit(" ", 1)[-1]), UTC) if text.startswith("hello") else None

    def ms(moment):
        return (moment.replace(tzinfo=UTC) - before).total_seconds() * 1000

    return {
        "run": run_id, "ok": run.status == "succeeded" and printed is not None and text.count("\n") == 1,
        "status": run.status, "latency": ms(first["created_at"]), "answered": ms(answered),
        "created": ms(run.created_at), "enqueued": ms(job.enqueued_at), "job_started": ms(job.started_at),
        "started": ms(run.started_at), "printed": ms(printed) if printed else float("nan"),
        "finished": ms(run.finished_at),
    }


def percentiles(values):
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values), "p90": cuts[89], "p99": cuts[98], "max": max(values),
            "min": min(values), "mean": statistics.fmean(values)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="measured runs (default 50)")
    parser.add_argument("--warmup", type=int, default=2, help="runs before those, not counted (default 2)")
    args = parser.parse_args()

    common.configure()
    common.reset_state()
    import redis

    from scripts_app.models import ApiToken

    user, environment, script = common.create_fixtures("hello", SCRIPT, timeout_seconds=60)
    _, key = ApiToken.issue(user, name="bench")
    redis_conn = redis.Redis.from_url(common.REDIS_URL)
    print(f"Dispatch latency benchmark: POST /api/runs/ -> first LogChunk stored, {args.runs} runs")
    common.print_machine()

    procs = []
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        tmp = Path(tmp)
        try:
            port = common.free_port()
            procs.append(common.start([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                       "backfill_site.asgi:application"], tmp / "daphne.log"))
            procs.append(common.start([sys.executable, "manage.py", "backfill_worker", common.QUEUE],
                                      tmp / "worker.log"))
            common.wait_for_port(port, procs[0])
            wait_until(lambda: worker_states(redis_conn) == ["idle"], 30, "the worker to register")

            warmups = [one_run(port, key, script, environment, redis_conn) for _ in range(args.warmup)]
            if warmups:
                print("warm-up (not counted): " + ", ".join(f"{w['latency']:.0f} ms" for w in warmups))
            results = []
            for i in range(args.runs):
                result = one_run(port, key, script, environment, redis_conn)
                results.append(result)
                print(f"  {i + 1:3d}  run #{result['run']:<4d} {result['latency']:7.1f} ms  {result['status']}",
                      flush=True)
        except Exception:
            for name in ("daphne", "worker")[:len(procs)]:
                print(f"--- {name} log (tail) ---\n" + (tmp / f"{name}.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            for proc in procs:
                common.stop(proc)

    latency = percentiles([r["latency"] for r in results])
    print(f"\nPOST -> first LogChunk stored, {len(results)} runs (ms): "
          + ", ".join(f"{name} {value:.1f}" for name, value in latency.items()))
    verdict = "met" if latency["p50"] <= TARGET_P50_MS else "MISSED"
    print(f"target p50 <= {TARGET_P50_MS} ms: {verdict}")

    def phase(start, end):
        return statistics.median(r[end] - (r[start] if start else 0) for r in results)

    print("median phases (ms):")
    print(f"  before POST -> response received            {phase(None, 'answered'):7.1f}")
    print(f"  before POST -> Run.created_at (in the view)  {phase(None, 'created'):7.1f}")
    print(f"  Run.created_at -> rq job enqueued_at         {phase('created', 'enqueued'):7.1f}   (commit, enqueue)")
    print(f"  enqueued_at -> rq job started_at             {phase('enqueued', 'job_started'):7.1f}"
          "   (dequeue, fork, work horse set-up)")
    print(f"  job started_at -> Run.started_at             {phase('job_started', 'started'):7.1f}"
          "   (job import, database connection, claim)")
    print(f"  Run.started_at -> the script prints          {phase('started', 'printed'):7.1f}"
          "   (temp dir, spawn, interpreter start-up)")
    print(f"  the script prints -> first LogChunk          {phase('printed', 'latency'):7.1f}   (read, flush, INSERT)")
    print(f"  first LogChunk -> Run.finished_at            {phase('latency', 'finished'):7.1f}")
    failed = [r for r in results if not r["ok"]]
    if failed:
        print(f"{len(failed)} run(s) did not succeed or printed something else: {[r['run'] for r in failed]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
