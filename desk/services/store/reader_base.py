"""What every part of the store's read queries shares: the read-only database, the journal, time ranges.

`StoreReader` (in `queries.py`) is composed of the query families in
`account_queries.py`, `trade_queries.py` and `worker_queries.py`; each one is
a `ReaderBase`, so they all read through the same connections.
"""

from __future__ import annotations

from pathlib import Path

from desk.services.store.journal import Journal
from desk.services.store.readonly import ReadOnlyDatabase

__all__ = ["ReaderBase", "ts_range"]

# Open bounds for optional time ranges, so every range query has one shape (and one plan).
_TS_MIN, _TS_MAX = -(2**62), 2**62


class ReaderBase:
    """The store a reader reads: its database (read-only) and its journal (without the writer lock)."""

    def __init__(self, database_url: str, journal_dir: Path) -> None:
        self.database_url = database_url
        self.journal_dir = Path(journal_dir)
        self._journal = Journal(self.journal_dir)  # constructing a Journal touches nothing
        self._db = ReadOnlyDatabase(database_url)

    def close(self) -> None:
        """Release the database connections."""
        self._db.close()


def ts_range(start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    """Return (start_ms, end_ms) as ints, an open bound in place of a missing end."""
    return (_TS_MIN if start_ms is None else int(start_ms)), (_TS_MAX if end_ms is None else int(end_ms))
