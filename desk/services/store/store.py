"""The event store: the journal first (the authority), then the SQL projection.

`flush` journals a batch before projecting it. If projecting fails the error is
logged and re-raised, but nothing is lost: the journal has the batch, the
next flush (or the next `open`) projects whatever the database is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import make_url

from desk.config import StoreConfig
from desk.core.errors import JournalError
from desk.core.events import Event, event_from_record
from desk.services.store.journal import Journal
from desk.services.store.projection import CommandRow, Projection

__all__ = ["REBUILD_BATCH", "EventStore", "resolve_database_url"]

_log = structlog.get_logger(__name__)

# Records projected per transaction when catching up or rebuilding: large enough to amortise
# the commit, small enough to keep memory flat on a journal of millions of lines.
REBUILD_BATCH = 5_000


def resolve_database_url(database_url: str, base_dir: Path) -> str:
    """Return `database_url` with a relative SQLite path made absolute against `base_dir`."""
    url = make_url(database_url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return database_url
    path = Path(database)
    if path.is_absolute():
        return database_url
    return url.set(database=str(Path(base_dir) / path)).render_as_string(hide_password=False)


class EventStore:
    """Journal plus projection behind one buffered `append` / `flush` interface.

    `open()` locks the journal for writing (one writer per journal) and brings
    the projection up to date; `append`/`flush`/`read_events` need it. The
    command-inbox helpers need only the database and work on an unopened store.
    `projection_lag_s` (default 0: project on every flush) lets a fast backtest
    trade projection freshness for throughput.
    """

    def __init__(self, config: StoreConfig, base_dir: Path, *, projection_lag_s: float = 0.0) -> None:
        journal_dir = Path(config.journal_dir)
        self.journal_dir = journal_dir if journal_dir.is_absolute() else Path(base_dir) / journal_dir
        self.database_url = resolve_database_url(config.database_url, Path(base_dir))
        self.fsync = config.fsync
        self._journal: Journal | None = None
        self._projection: Projection | None = None
        self._buffer: list[dict[str, Any]] = []
        self._accepted_seq = 0
        # Set when a projection write failed: the next flush catches up from the journal first.
        self._projection_behind = False
        self._is_open = False
        # Group commit for fast backtests: a flush within `projection_lag_s` of the last projection
        # only journals; the next flush past the lag projects everything pending in one transaction.
        # Live and paper loops flush seconds apart, so with any lag below that they project every flush.
        self.projection_lag_s = projection_lag_s
        self._unprojected: list[dict[str, Any]] = []
        self._last_projected_at = float("-inf")

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> int:
        """Open the journal and the projection, project what the database lacks; return how many records."""
        try:
            journal_seq = self._open_journal()
            projection = self._open_projection()
            self._is_open = True
            if projection.needs_rebuild() or projection.last_seq() > journal_seq:
                # Another schema, or a database made from a different journal: start it over.
                _log.warning(
                    "projection_rebuild_on_open", projection_seq=projection.last_seq(), journal_seq=journal_seq
                )
                return self.rebuild()
            return self._catch_up()
        except BaseException:
            self.close()
            raise

    @property
    def is_open(self) -> bool:
        """Return True between `open()` and `close()`."""
        return self._is_open

    @property
    def database_url_display(self) -> str:
        """Return the database URL with any password masked, for logs and summaries."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Flush what is buffered, then release the journal and the database."""
        try:
            if self._journal is not None and self._projection is not None:
                self.flush()
                if self._unprojected or self._projection_behind:
                    self.project_pending()
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._projection is not None:
                self._projection.close()
                self._projection = None
            self._is_open = False

    # --- writing -----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Return the highest seq accepted by `append` (buffered or journaled), 0 for a new store."""
        return self._accepted_seq

    def append(self, records: list[dict[str, Any]]) -> None:
        """Buffer records for the next `flush`; their seqs must continue `last_seq`."""
        last_seq = self._accepted_seq
        for record in records:
            seq = record.get("seq")
            if type(seq) is not int or seq <= last_seq:
                raise JournalError(f"seq {seq!r} ({record.get('type')}) is not after {last_seq}")
            last_seq = seq
        self._buffer.extend(records)
        self._accepted_seq = last_seq

    def flush(self) -> None:
        """Journal the buffer, then project it; a projection failure is logged and re-raised.

        With `projection_lag_s` > 0 the projection may trail the journal by up
        to that long (see the constructor); `project_pending` or `close` settle it.
        """
        if not self._buffer:
            # A backtest calls this once per simulated minute, mostly with nothing to write: stay cheap.
            if self._journal is None or self._projection is None:
                self._require_open()
            return
        journal, _ = self._require_open()
        # A batch the journal refuses (a NaN, say) would be refused forever: drop it and say so.
        batch, self._buffer = self._buffer, []
        try:
            journal.append(batch)
        except JournalError:
            # A failed write may still have landed some lines: trust the journal for what it holds.
            self._accepted_seq = journal.last_seq
            self._projection_behind = True
            raise
        self._unprojected.extend(batch)
        now = time.monotonic()
        if (
            self._projection_behind
            or now - self._last_projected_at >= self.projection_lag_s
            or len(self._unprojected) >= REBUILD_BATCH
        ):
            self.project_pending()

    def project_pending(self) -> None:
        """Project every journaled record the database still lacks; a failure is logged and re-raised."""
        _, projection = self._require_open()
        pending, self._unprojected = self._unprojected, []
        try:
            if self._projection_behind:
                self._catch_up()
                self._projection_behind = False
            elif pending:
                projection.project(pending)
        except Exception as exc:
            # The journal has these records; the next flush (or open) catches the projection up from it.
            self._projection_behind = True
            _log.error("projection_failed", projection_seq=projection.last_seq(), error=repr(exc))
            raise
        self._last_projected_at = time.monotonic()

    # --- reading and rebuilding ---------------------------------------------------------

    def read_events(self, after_seq: int = 0) -> Iterator[Event]:
        """Yield the journaled events with seq > `after_seq` (buffered ones appear after `flush`)."""
        journal = self._journal if self._journal is not None else Journal(self.journal_dir)
        for record in journal.read(after_seq):
            yield event_from_record(record)

    def rebuild(self) -> int:
        """Recreate the projection from the whole journal; return how many records were projected.

        Works on a store that was never opened (the `rebuild-db` command); it
        still takes the journal's writer lock, so it refuses to run under a
        live daemon.
        """
        if self._journal is None:
            self._open_journal()
        projection = self._open_projection()
        if self._buffer:
            self.flush()
        self._unprojected = []  # the rebuild projects them along with everything else
        projection.drop_and_create()
        count = self._catch_up()
        self._projection_behind = False
        return count

    @property
    def projection(self) -> Projection:
        """Return the projection (opening the database if needed) for read queries."""
        return self._open_projection()

    def heartbeat(self, wall_ms: int, pid: int, detail: str = "") -> None:
        """Tell readers (the control room) the daemon is alive and how far it has journaled."""
        _, projection = self._require_open()
        projection.beat("daemon", wall_ms, pid, self.last_seq, detail)

    # --- the commands inbox ------------------------------------------------------------
    # These need only the database, not the journal: an operator's CLI or the dashboard
    # queues commands while the daemon holds the journal.

    def submit_command(self, command: str, payload: dict[str, Any], wall_ms: int) -> int:
        """Queue an operator command; return its command_id."""
        return self._open_projection().submit_command(command, payload, wall_ms)

    def pending_commands(self) -> list[CommandRow]:
        """Return the commands still pending, oldest first."""
        return self._open_projection().pending_commands()

    def mark_command(self, command_id: int, status: str, detail: str, acked_seq: int | None) -> None:
        """Record a command as applied or rejected, with the seq of its CommandApplied event."""
        self._open_projection().mark_command(command_id, status, detail, acked_seq)

    # --- internals ---------------------------------------------------------------------

    def _open_journal(self) -> int:
        if self._journal is None:
            journal = Journal(self.journal_dir, fsync=self.fsync)
            self._accepted_seq = journal.open_for_writing()
            self._journal = journal
        return self._journal.last_seq

    def _open_projection(self) -> Projection:
        if self._projection is None:
            self._projection = Projection(self.database_url)
        return self._projection

    def _require_open(self) -> tuple[Journal, Projection]:
        if self._journal is None or self._projection is None:
            raise JournalError("the event store is not open: call open() first")
        return self._journal, self._projection

    def _catch_up(self) -> int:
        journal, projection = self._require_open()
        count = 0
        batch: list[dict[str, Any]] = []
        for record in journal.read(after_seq=projection.last_seq()):
            batch.append(record)
            if len(batch) >= REBUILD_BATCH:
                projection.project(batch)
                count += len(batch)
                batch = []
        if batch:
            projection.project(batch)
            count += len(batch)
        if count:
            _log.info("projection_caught_up", records=count, last_seq=projection.last_seq())
        return count
