"""A yard whose index is opened read-only, so the web view cannot change it.

:meth:`tuneyard.yard.index.Index.open` may migrate the schema and switches the
database to WAL: both are writes. The web view opens ``index.db`` with SQLite's
``mode=ro`` instead, and refuses an index whose schema this tuneyard does not read.
"""

from __future__ import annotations

import sqlite3
from functools import cached_property

from tuneyard.errors import ConfigError
from tuneyard.yard.index import MIGRATIONS, Index
from tuneyard.yard.root import INDEX_FILE, Yard


class ReadOnlyYard(Yard):
    """A :class:`Yard` whose index connection cannot write.

    One per request: a SQLite connection belongs to the thread that uses it, and
    opening one costs well under a millisecond.
    """

    @cached_property
    def index(self) -> Index:
        uri = f"{(self.state_dir / INDEX_FILE).as_uri()}?mode=ro"
        return Index(sqlite3.connect(uri, uri=True, check_same_thread=False))

    def close(self) -> None:
        """Close the index connection if this request opened it."""
        if "index" in self.__dict__:
            self.index.close()


def check_readable(yard: ReadOnlyYard) -> None:
    """Refuse to serve an index whose schema is not the one this tuneyard reads (it cannot migrate it)."""
    if not yard.has_index:
        return
    try:
        version = yard.index.version
    finally:
        yard.close()
    if version != len(MIGRATIONS):
        raise ConfigError(
            f"the yard index {yard.state_dir / INDEX_FILE} has schema version {version}; "
            f"this tuneyard reads version {len(MIGRATIONS)}, and the web view never writes to it.",
            "Run `tuneyard runs ls` once (it upgrades the index), then serve again.",
        )
