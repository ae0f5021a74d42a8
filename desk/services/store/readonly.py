"""A read-only handle on the projection database, for readers that run beside the daemon.

SQLite is opened through a `mode=ro` URI: the reader can never create the
database, change it or take a write lock, and WAL mode lets it read while the
daemon writes. A database that does not exist yet, or whose tables the daemon
has not created yet, reads as empty rather than failing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from desk.core.errors import DeskError

__all__ = ["ReadOnlyDatabase", "StoreReadError", "readonly_url"]


class StoreReadError(DeskError):
    """The projection database exists but could not be read."""


def readonly_url(database_url: str) -> str | None:
    """Return a URL that opens the database read-only, or None when a SQLite file does not exist (yet)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return database_url
    database = url.database or ""
    if not database or database == ":memory:":
        return None  # another process's in-memory database cannot be read
    path = Path(database.removeprefix("file:").split("?", 1)[0])
    if not path.is_file():
        return None
    # mode=ro: never create the file, never take a write lock. The path is quoted because it is now a URI.
    return f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"


class ReadOnlyDatabase:
    """Run read queries on `database_url`; every query on a missing database or table returns no rows.

    The engine is created on the first query that finds the database, so a
    handle made before the daemon's first start picks the store up once it appears.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.backend = make_url(database_url).get_backend_name()
        self._engine: Engine | None = None
        self._lock = threading.Lock()  # Streamlit runs sessions on threads that share one handle

    def close(self) -> None:
        """Release the connections."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def execute(self, statement: Any, **params: Any) -> Sequence[Any]:
        """Return every row of a Core statement (or `text`) with bound `params`; no rows without the table."""
        with self._connection() as connection:
            if connection is None:
                return []
            try:
                return connection.execute(statement, params).all()
            except DBAPIError as exc:
                if "no such table" in str(exc.orig):
                    return []  # the daemon has created the file but not its tables yet
                raise

    def rows(self, sql: str, **params: Any) -> Sequence[Any]:
        """Return every row of a SQL text query."""
        return self.execute(text(sql), **params)

    def first(self, sql: str, **params: Any) -> Any:
        """Return the first row of a SQL text query, None without rows."""
        rows = self.rows(sql, **params)
        return rows[0] if rows else None

    @contextmanager
    def _connection(self) -> Iterator[Connection | None]:
        engine = self._engine_or_none()
        if engine is None:
            yield None
            return
        try:
            with engine.connect() as connection:
                yield connection
        except DBAPIError as exc:
            raise StoreReadError(f"cannot read {make_url(self.database_url)!r}: {exc.orig}") from exc

    def _engine_or_none(self) -> Engine | None:
        with self._lock:
            if self._engine is None:
                url = readonly_url(self.database_url)
                if url is None:
                    return None
                # A reader waits for a checkpoint rather than failing; pooled connections move between threads.
                connect_args = {"timeout": 5.0, "check_same_thread": False} if self.backend == "sqlite" else {}
                try:
                    self._engine = create_engine(url, connect_args=connect_args)
                except ImportError as exc:  # repr(URL) masks the password; the message names the module only
                    raise StoreReadError(
                        f"cannot open {make_url(self.database_url)!r}: no {self.backend} driver is installed ({exc})"
                    ) from exc
                except SQLAlchemyError as exc:
                    raise StoreReadError(f"cannot open {make_url(self.database_url)!r}: {exc}") from exc
            return self._engine
