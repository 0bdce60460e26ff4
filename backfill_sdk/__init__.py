"""backfill_sdk: production-safe backfills, in a few lines, with the standard library only.

    import sqlite3
    import backfill_sdk as bf

    conn = sqlite3.connect("shop.db")
    source = bf.KeysetSource(conn, table="campaigns", key="id", where="budget_currency IS NULL")

    def apply(rows, dry_run):
        if not dry_run:
            conn.executemany("UPDATE campaigns SET budget_currency = 'EUR' WHERE id = ?", [(r[0],) for r in rows])
            conn.commit()

    bf.run(source, apply)

Run by Backfill, it talks to its supervisor over two pipes (JSON lines): checkpoints are durable in
the service's database before `run` goes on, batch size and sleep change live, pause, resume and
cancel take effect between chunks, progress and batch statistics reach the run page. Run from a
terminal, it keeps its checkpoint in a local file and prints its progress. See docs/backfills.md.
"""

from backfill_sdk.channel import Controls, connect
from backfill_sdk.runner import BatchError, IncompleteBackfill, run
from backfill_sdk.sources import IterableSource, KeysetSource

__all__ = ["BatchError", "Controls", "IncompleteBackfill", "IterableSource", "KeysetSource", "connect", "run"]
__version__ = "1.0.0"
