"""The yard index: a SQLite cache of every manifest, for fast queries.

WAL mode lets readers run while a writer commits; a busy timeout makes concurrent
writers wait instead of failing. The schema evolves through numbered migrations
recorded in ``PRAGMA user_version``. The files stay the truth: ``reindex`` rebuilds
this database from the manifests alone.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tuneyard.yard.manifest import Manifest

MIGRATIONS: list[str] = [
    # 1: artifacts and their flattened numeric metrics.
    """
    CREATE TABLE artifacts (
        id TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        arch TEXT, method TEXT, rank INTEGER, strategy TEXT,
        task TEXT, dataset TEXT, project TEXT,
        created TEXT NOT NULL, updated TEXT NOT NULL,
        manifest TEXT NOT NULL
    );
    CREATE INDEX artifacts_kind ON artifacts(kind);
    CREATE INDEX artifacts_name ON artifacts(name);
    CREATE TABLE metrics (
        artifact_id TEXT NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value REAL,
        PRIMARY KEY (artifact_id, key)
    );
    CREATE INDEX metrics_key_value ON metrics(key, value);
    """,
]

COLUMNS = ("id", "path", "name", "kind", "status", "arch", "method", "rank", "strategy",
           "task", "dataset", "project", "created", "updated")


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"sst2": {"accuracy": 0.9}}`` -> ``{"sst2.accuracy": 0.9}`` (numbers only)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


class Index:
    """A connection to one yard's ``index.db``."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    @classmethod
    def open(cls, database: Path) -> Index:
        """Open (creating and migrating if needed) the index at ``database``."""
        database.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(database, timeout=60.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA synchronous=NORMAL")
        index = cls(connection)
        index.migrate()
        return index

    def migrate(self) -> None:
        """Apply migrations newer than the database's ``user_version``."""
        current = self.connection.execute("PRAGMA user_version").fetchone()[0]
        if current >= len(MIGRATIONS):
            return
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            current = self.connection.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        self.connection.execute(statement)
                self.connection.execute(f"PRAGMA user_version = {number}")
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise

    def upsert(self, manifest: Manifest) -> None:
        """Insert or replace one artifact and its metrics in a single transaction."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            self._write(manifest)
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise

    def _write(self, manifest: Manifest) -> None:
        data = manifest.model_dump(by_alias=True, mode="json")
        self.connection.execute("DELETE FROM artifacts WHERE path = ? OR id = ?", (manifest.path, manifest.id))
        values = [data[column] for column in COLUMNS]
        self.connection.execute(
            f"INSERT INTO artifacts ({', '.join(COLUMNS)}, manifest) VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
            [*values, json.dumps(data)],
        )
        self.connection.executemany(
            "INSERT INTO metrics (artifact_id, key, value) VALUES (?, ?, ?)",
            [(manifest.id, key, value) for key, value in flatten_metrics(manifest.metrics).items()],
        )
