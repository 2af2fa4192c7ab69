"""A yard whose index is opened read-only, so the web view cannot change it.

:meth:`tuneyard.yard.index.Index.open` may migrate the schema and switches the
database to WAL: both are writes. The web view opens ``index.db`` with SQLite's
``mode=ro`` instead, and refuses an index whose schema this tuneyard does not read.

A yard on shared storage (``--yard s3://...``) is the exception that proves it: there the
index is this machine's cache of the bucket's manifests, not the yard, and the view keeps
it up to date (:class:`IndexRefresher`) so that what another machine wrote shows up; the
yard itself, the bucket, is only read.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from functools import cached_property

from tuneyard.errors import ConfigError
from tuneyard.yard.index import MIGRATIONS, Index
from tuneyard.yard.root import INDEX_FILE, Yard

# A shared yard's index is refreshed at most this often (seconds): a refresh is one listing
# of the change journal, and a page load within this time of the last one shows the same runs.
REFRESH_S = 5.0


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


class IndexRefresher:
    """Keeps the local index of a yard on shared storage up to date for the web view.

    Requests run on a pool of threads; the first one after :data:`REFRESH_S` brings the
    index up to date (:meth:`Yard.heal_index`: the change journal, or a full listing when
    there is no index yet) while the others wait for it, then all read it read-only.
    """

    def __init__(self, yard: Yard) -> None:
        self.root = yard.root
        self.storage = yard.storage
        self.lock = threading.Lock()
        self.refreshed_at = -math.inf

    def refresh(self) -> None:
        """Bring the index up to date unless that was done in the last :data:`REFRESH_S` seconds."""
        with self.lock:
            if time.monotonic() - self.refreshed_at < REFRESH_S:
                return
            yard = Yard(self.root, self.storage)  # its own index connection, for this thread
            try:
                yard.heal_index()
            finally:
                if "index" in yard.__dict__:
                    yard.index.close()
            self.refreshed_at = time.monotonic()
