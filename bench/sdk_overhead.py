"""SDK overhead: one million rows in PostgreSQL, the same update done by a hand-written keyset loop and by
backfill_sdk through a real worker (a checkpoint per batch), batch size 1,000; plus the time per batch of
the first and last tenth of the table, keyset against OFFSET.

    .venv/bin/python bench/sdk_overhead.py [--rows N] [--rounds N]

The two loops alternate for --rounds rounds (default 3) on a freshly filled table each time; the
medians are compared (single timings on a shared VM vary by a third from one minute to the next).

It drops and recreates the PostgreSQL databases `backfill_bench` (the service's) and
`backfill_bench_target` (the table), and flushes Redis database 14. Results: docs/benchmarks.md.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TARGET_DB = "backfill_bench_target"
TARGET_URL = f"{common.PG_SERVER.replace('postgres://', 'postgresql://')}/{TARGET_DB}"
BATCH = 1000
TARGET_OVERHEAD = 0.10

SCRIPT = f'''
import time
import psycopg
import backfill_sdk as bf

conn = psycopg.connect("{TARGET_URL}", autocommit=True)


def apply(rows, dry_run):
    with conn.transaction():
        conn.execute("UPDATE items SET done = true WHERE id = ANY(%s)", ([r[0] for r in rows],))


began = time.monotonic()
summary = bf.run(bf.KeysetSource(conn, "items", key="id", count=False), apply, name="bench", batch_size={BATCH})
print(f"sdk loop {{time.monotonic() - began:.3f}} s, {{summary['rows']}} rows, {{summary['batches']}} batches")
'''


def reset_target(rows):
    import psycopg

    with psycopg.connect(f"{common.PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TARGET_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TARGET_DB}"')
    fill(rows)


def fill(rows):
    import psycopg

    with psycopg.connect(TARGET_URL, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute("CREATE TABLE items (id bigserial PRIMARY KEY, value int NOT NULL, done boolean NOT NULL "
                     "DEFAULT false)")
        conn.execute(f"INSERT INTO items (value) SELECT g FROM generate_series(1, {rows}) g")
        conn.execute("VACUUM ANALYZE items")


def hand_loop():
    """The loop an engineer writes by hand: keyset, batch of 1,000, one transaction per batch."""
    import psycopg

    times = []
    with psycopg.connect(TARGET_URL, autocommit=True) as conn:
        last, began = 0, time.monotonic()
        while True:
            started = time.monotonic()
            ids = [r[0] for r in conn.execute("SELECT id FROM items WHERE id > %s ORDER BY id LIMIT %s",
                                              (last, BATCH)).fetchall()]
            if not ids:
                break
            with conn.transaction():
                conn.execute("UPDATE items SET done = true WHERE id = ANY(%s)", (ids,))
            last = ids[-1]
            times.append(time.monotonic() - started)
        return time.monotonic() - began, times


def select_times(rows, offset):
    """Seconds per SELECT of a batch, for the first and the last tenth of the table."""
    import psycopg

    batches = rows // BATCH
    tenth = max(1, batches // 10)
    result = {}
    with psycopg.connect(TARGET_URL, autocommit=True) as conn:
        for name, numbers in (("first", range(tenth)), ("last", range(batches - tenth, batches))):
            spent = []
            for n in numbers:
                started = time.monotonic()
                if offset:
                    conn.execute("SELECT id FROM items ORDER BY id OFFSET %s LIMIT %s", (n * BATCH, BATCH)).fetchall()
                else:
                    conn.execute("SELECT id FROM items WHERE id > %s ORDER BY id LIMIT %s",
                                 (n * BATCH, BATCH)).fetchall()
                spent.append(time.monotonic() - started)
            result[name] = statistics.mean(spent)
    return result


def sdk_run(user, environment, script, log_path):
    from runs import services
    from runs.models import LogChunk, Run

    run = services.request_run(user, script, environment, {})
    worker = common.start([sys.executable, "manage.py", "backfill_worker", "--burst", common.QUEUE], log_path)
    worker.wait()
    common.stop(worker)
    run = Run.objects.get(pk=run.pk)
    log = "".join(LogChunk.objects.filter(run=run).order_by("seq").values_list("text", flat=True))
    return run, log


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    common.configure()
    common.reset_state()
    user, environment, script = common.create_fixtures("sdk-bench", SCRIPT)
    print(f"SDK overhead benchmark: {args.rows:,} rows, batch {BATCH:,}")
    common.print_machine()

    reset_target(args.rows)
    hands, loops, wholes = [], [], []
    for round_no in range(1, args.rounds + 1):
        fill(args.rows)
        hand_s, batch_times = hand_loop()
        tenth = max(1, len(batch_times) // 10)
        fill(args.rows)
        run, log = sdk_run(user, environment, script, Path(f"/tmp/backfill-bench-sdk-worker-{round_no}.log"))
        if run.status != "succeeded":
            print(f"the SDK run {run.status}: {run.status_detail}\n{log[-2000:]}")
            return 1
        loop_s = float(log.split("sdk loop ", 1)[1].split(" s", 1)[0])
        whole_s = (run.finished_at - run.started_at).total_seconds()
        hands.append(hand_s)
        loops.append(loop_s)
        wholes.append(whole_s)
        print(f"\nround {round_no}: (a) hand-written keyset loop {hand_s:.2f} s ({len(batch_times)} batches; per batch "
              f"first tenth {statistics.mean(batch_times[:tenth]) * 1000:.2f} ms, last tenth "
              f"{statistics.mean(batch_times[-tenth:]) * 1000:.2f} ms)")
        print(f"         (b) backfill_sdk through a worker: loop {loop_s:.2f} s, run started -> finished "
              f"{whole_s:.2f} s ({run.batches.count()} batches stored, checkpoint {run.checkpoint})")
    hand, loop, whole = statistics.median(hands), statistics.median(loops), statistics.median(wholes)
    overhead = loop / hand - 1
    print(f"\nmedians of {args.rounds}: (a) {hand:.2f} s, (b) loop {loop:.2f} s, whole run {whole:.2f} s")
    print(f"SDK overhead: {overhead:+.1%} (target <= {TARGET_OVERHEAD:.0%}: "
          f"{'met' if overhead <= TARGET_OVERHEAD else 'MISSED'}); of the whole run: {whole / hand - 1:+.1%}")

    keyset, offset = select_times(args.rows, offset=False), select_times(args.rows, offset=True)
    print("\nSELECT of one batch (mean):")
    print(f"    keyset: first tenth {keyset['first'] * 1000:.2f} ms, last tenth {keyset['last'] * 1000:.2f} ms")
    print(f"    OFFSET: first tenth {offset['first'] * 1000:.2f} ms, last tenth {offset['last'] * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
