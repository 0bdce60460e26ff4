"""Where a backfill's rows come from, a chunk at a time: keyset pagination over a table (never OFFSET),
or any iterable."""

import itertools
import re

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def identifier(name):
    """Table and column names go into SQL as they are, so they must be plain (dotted) identifiers."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain table or column name")
    return name


class KeysetSource:
    """The rows of `table` whose `where` holds, in order of the unique, orderable `key`, a chunk after another:
    `SELECT columns FROM table WHERE (where) AND key > <last key> ORDER BY key LIMIT <batch size>`.

    Works with any DB-API connection; placeholders follow its module (`?` for sqlite3, `%s` for psycopg),
    also in `where`, whose values are `where_params`. Each row's first column is the key unless `columns`
    puts it elsewhere.
    """

    def __init__(self, connection, table, key="id", columns=None, where=None, where_params=(), count=True):
        self.connection = connection
        self.table = identifier(table)
        self.key = identifier(key)
        self.columns = [identifier(c) for c in (columns or [key])]
        self.key_index = self.columns.index(self.key) if self.key in self.columns else None
        if self.key_index is None:
            self.columns.insert(0, self.key)
            self.key_index = 0
        self.where = f"({where}) AND " if where else ""
        self.where_params = tuple(where_params)
        self.placeholder = "?" if type(connection).__module__.startswith("sqlite3") else "%s"
        self.counts = count

    def _query(self, select, after, tail=""):
        condition = f"{self.key} > {self.placeholder}" if after is not None else "1 = 1"
        sql = f"SELECT {select} FROM {self.table} WHERE {self.where}{condition}{tail}"
        params = self.where_params + ((after,) if after is not None else ())
        return sql, params

    def fetch(self, after, limit):
        sql, params = self._query(", ".join(self.columns), after, f" ORDER BY {self.key} LIMIT {self.placeholder}")
        cursor = self.connection.cursor()
        cursor.execute(sql, (*params, int(limit)))
        return cursor.fetchall()

    def key_after(self, rows, after):
        return rows[-1][self.key_index]

    def count(self, after):
        """How many rows are left after `after` (for progress and ETA); None when counting is off."""
        if not self.counts:
            return None
        sql, params = self._query("count(*)", after)
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


class IterableSource:
    """Any iterable, a chunk at a time; the checkpoint is how many items are done (so the iterable must
    give the same items in the same order when a run resumes)."""

    def __init__(self, iterable, total=None):
        self.iterable = iterable
        self.iterator = None
        self.position = 0
        self.total = total

    def fetch(self, after, limit):
        if self.iterator is None:
            self.iterator = iter(self.iterable)
            self.position = after or 0
            for _ in itertools.islice(self.iterator, self.position):
                pass
        rows = list(itertools.islice(self.iterator, int(limit)))
        self.position += len(rows)
        return rows

    def key_after(self, rows, after):
        return (after or 0) + len(rows)

    def count(self, after):
        return None if self.total is None else self.total - (after or 0)
