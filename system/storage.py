"""Per-node storage: records with versions, and hints for replicas that missed a write.

:class:`SQLiteStore` is durable: SQLite in WAL mode, one transaction per write, committed
before the write is acknowledged. With ``synchronous=NORMAL`` (the default) a committed write
survives the process being killed (SIGKILL): it is in the WAL file, which the OS keeps.
After a power loss or kernel crash the last transactions before the last WAL checkpoint
sync may be lost; ``sync="full"`` fsyncs every commit and keeps them (at a throughput cost).

:class:`MemoryStore` is the weakened mode: a restart loses everything.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from system.versions import Version

__all__ = ["Record", "Store", "SQLiteStore", "MemoryStore", "open_store"]


class Record(NamedTuple):
    key: str
    value: str
    version: Version

    def as_json(self) -> dict:
        return {"key": self.key, "value": self.value, "version": self.version.encode()}


class Store(Protocol):
    durable: bool

    def get(self, key: str) -> Record | None: ...

    def put(self, record: Record) -> bool:
        """Store ``record`` unless a newer-or-equal version is there; True if it was stored."""

    def put_many(self, records: Iterable[Record]) -> int: ...

    def delete_if(self, key: str, version: Version) -> bool:
        """Delete ``key`` only if it still has ``version`` (handoff after a ring change)."""

    def scan(self, after: str, limit: int) -> list[Record]: ...

    def count(self) -> int: ...

    def add_hints(self, target: str, keys: Iterable[str]) -> None:
        """Note that ``target`` lacks ``keys``; re-hinting a key gives it a new generation."""

    def hints(self, target: str, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` (key, generation) hints for ``target``."""

    def remove_hints(self, target: str, hints: Iterable[tuple[str, int]]) -> None:
        """Remove delivered hints, unless re-hinted (a newer generation) meanwhile."""

    def hint_counts(self) -> dict[str, int]: ...

    def has_hints_for_key(self, key: str) -> bool: ...

    def get_meta(self, name: str) -> str | None: ...

    def set_meta(self, name: str, value: str) -> None: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    wall INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    node TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hints (
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    gen INTEGER NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

_UPSERT = """
INSERT INTO kv (key, value, wall, counter, node) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(key) DO UPDATE SET
    value = excluded.value, wall = excluded.wall, counter = excluded.counter, node = excluded.node
WHERE (excluded.wall, excluded.counter, excluded.node) > (kv.wall, kv.counter, kv.node)
"""


class SQLiteStore:
    """Durable store: SQLite, WAL journal, a commit per write before it is acknowledged."""

    durable = True

    def __init__(self, path: str, *, sync: str = "normal", exclusive: bool = False,
                 checkpoint_pages: int | None = None) -> None:
        """``sync="off"`` with ``exclusive`` is for a store that only one process ever opens
        and that is always closed, never lost with its host: the simulated runtime's. No file
        locks between transactions, no fsync; every write is still its own committed
        transaction in the WAL. ``checkpoint_pages``: the WAL's size that triggers a
        checkpoint (SQLite's default is 1000 pages)."""
        if sync not in ("normal", "full", "off"):
            raise ValueError(f"sync must be 'normal', 'full' or 'off', got {sync!r}")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        # One connection, used from the event loop thread; the lock guards the rare calls
        # made from worker threads (bulk scans during a rebalance).
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        if exclusive:  # before the first access: the WAL index then needs no shared memory
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        if checkpoint_pages is not None:
            self._db.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        self._db.execute("PRAGMA cache_size=-131072")  # 128 MiB of pages
        self._db.execute("PRAGMA mmap_size=1073741824")  # reads straight from the page cache
        self._db.executescript(_SCHEMA)
        self._gen = self._db.execute("SELECT coalesce(max(gen), 0) FROM hints").fetchone()[0]

    def get(self, key: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value, wall, counter, node FROM kv WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else Record(key, row[0], Version(row[1], row[2], row[3]))

    def put(self, record: Record) -> bool:
        v = record.version
        with self._lock:
            cur = self._db.execute(_UPSERT, (record.key, record.value, v.wall_ms, v.counter, v.node))
        return cur.rowcount > 0

    def put_many(self, records: Iterable[Record]) -> int:
        rows = [(r.key, r.value, r.version.wall_ms, r.version.counter, r.version.node) for r in records]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_UPSERT, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    def delete_if(self, key: str, version: Version) -> bool:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM kv WHERE key = ? AND wall = ? AND counter = ? AND node = ?",
                (key, version.wall_ms, version.counter, version.node),
            )
        return cur.rowcount > 0

    def scan(self, after: str, limit: int) -> list[Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value, wall, counter, node FROM kv WHERE key > ? ORDER BY key LIMIT ?",
                (after, limit),
            ).fetchall()
        return [Record(k, val, Version(w, c, n)) for k, val, w, c, n in rows]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM kv").fetchone()[0]

    def add_hints(self, target: str, keys: Iterable[str]) -> None:
        with self._lock:
            self._gen += 1
            self._db.executemany(
                "INSERT INTO hints (target, key, gen) VALUES (?, ?, ?) "
                "ON CONFLICT(target, key) DO UPDATE SET gen = excluded.gen",
                ((target, k, self._gen) for k in keys))

    def hints(self, target: str, limit: int) -> list[tuple[str, int]]:
        with self._lock:
            return self._db.execute(
                "SELECT key, gen FROM hints WHERE target = ? LIMIT ?", (target, limit)
            ).fetchall()

    def remove_hints(self, target: str, hints: Iterable[tuple[str, int]]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM hints WHERE target = ? AND key = ? AND gen = ?",
                ((target, k, g) for k, g in hints))

    def hint_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT target, count(*) FROM hints GROUP BY target").fetchall()
        return dict(rows)

    def has_hints_for_key(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM hints WHERE key = ? LIMIT 1", (key,)).fetchone() is not None

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) "
                             "DO UPDATE SET value = excluded.value", (name, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MemoryStore:
    """Weakened mode: nothing survives a restart."""

    durable = False

    def __init__(self) -> None:
        self._kv: dict[str, Record] = {}
        self._hints: dict[str, dict[str, int]] = {}
        self._meta: dict[str, str] = {}
        self._gen = 0

    def get(self, key: str) -> Record | None:
        return self._kv.get(key)

    def put(self, record: Record) -> bool:
        old = self._kv.get(record.key)
        if old is not None and old.version >= record.version:
            return False
        self._kv[record.key] = record
        return True

    def put_many(self, records: Iterable[Record]) -> int:
        return sum(self.put(r) for r in records)

    def delete_if(self, key: str, version: Version) -> bool:
        old = self._kv.get(key)
        if old is None or old.version != version:
            return False
        del self._kv[key]
        return True

    def scan(self, after: str, limit: int) -> list[Record]:
        keys = sorted(k for k in self._kv if k > after)[:limit]
        return [self._kv[k] for k in keys]

    def count(self) -> int:
        return len(self._kv)

    def add_hints(self, target: str, keys: Iterable[str]) -> None:
        self._gen += 1
        self._hints.setdefault(target, {}).update(dict.fromkeys(keys, self._gen))

    def hints(self, target: str, limit: int) -> list[tuple[str, int]]:
        return sorted(self._hints.get(target, {}).items())[:limit]

    def remove_hints(self, target: str, hints: Iterable[tuple[str, int]]) -> None:
        pending = self._hints.get(target)
        if pending is None:
            return
        for key, gen in hints:
            if pending.get(key) == gen:
                del pending[key]
        if not pending:
            del self._hints[target]

    def hint_counts(self) -> dict[str, int]:
        return {t: len(k) for t, k in self._hints.items() if k}

    def has_hints_for_key(self, key: str) -> bool:
        return any(key in keys for keys in self._hints.values())

    def get_meta(self, name: str) -> str | None:
        return self._meta.get(name)

    def set_meta(self, name: str, value: str) -> None:
        self._meta[name] = value

    def close(self) -> None:
        self._kv.clear()


def open_store(kind: str, data_dir: str, node_id: str) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "durable":
        return SQLiteStore(os.path.join(data_dir, f"{node_id}.sqlite3"))
    raise ValueError(f"unknown storage {kind!r}: use 'durable' or 'memory'")
