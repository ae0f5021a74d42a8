"""The event store: the journal first (the authority), then the SQL projection.

`flush` journals a batch before projecting it. If projecting fails the error is
logged and re-raised, but nothing is lost: the journal has the batch, the
next flush (or the next `open`) projects whatever the database is missing.

With `projection_process=True` (a backtest) the projecting happens in a child
process (see `projector`): this process journals each batch, then hands the
child the bytes it wrote; `wait_projected` and `close` wait for the child and
raise ProjectionError if it failed.
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
from desk.services.store.projector import REBUILD_BATCH, ProjectorProcess, project_journal

__all__ = ["PROJECTION_TIMEOUT_S", "REBUILD_BATCH", "EventStore", "resolve_database_url"]

_log = structlog.get_logger(__name__)

# How long `wait_projected` and `close` wait for a projection process to answer. Its backlog is at
# most a few seconds of a backtest's records (the lag), so only a stuck child comes near this.
PROJECTION_TIMEOUT_S = 300.0


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

    `projection_process=True` moves the projection into a child process, off
    this process's main thread: `flush` only journals and hands the child the
    bytes written. The database then trails the journal until
    `wait_projected()` or `close()`, which raise ProjectionError if the child
    failed (the journal stays complete: `rebuild-db` rebuilds from it). Waits
    on the child are bounded by `projection_timeout_s`.
    """

    def __init__(
        self,
        config: StoreConfig,
        base_dir: Path,
        *,
        projection_lag_s: float = 0.0,
        projection_process: bool = False,
        projection_timeout_s: float = PROJECTION_TIMEOUT_S,
    ) -> None:
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
        self.projection_process = projection_process
        self.projection_timeout_s = projection_timeout_s
        self._projector: ProjectorProcess | None = None
        # With a projection process: the journaled bytes not yet sent to it, and how many records they hold.
        self._unsent: list[bytes] = []
        self._unsent_records = 0

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> int:
        """Open the journal and the projection, project what the database lacks; return how many records.

        With a projection process the child does that catching up, and this returns 0 at once.
        """
        try:
            journal_seq = self._open_journal()
            if self.projection_process:
                if self._projector is None:
                    self._projector = ProjectorProcess(
                        self.database_url, self.journal_dir, journal_seq, timeout_s=self.projection_timeout_s
                    )
                self._is_open = True
                return 0
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
    def projection_process_pid(self) -> int | None:
        """Return the process id of the projection process while one runs, else None."""
        return self._projector.pid if self._projector is not None else None

    @property
    def database_url_display(self) -> str:
        """Return the database URL with any password masked, for logs and summaries."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Flush what is buffered, then release the journal and the database.

        With a projection process, first wait (at most `projection_timeout_s`)
        until it has projected everything and exited; raise ProjectionError if
        it failed or died.
        """
        try:
            if self._journal is not None and (self._projection is not None or self._projector is not None):
                self.flush()
                if self._unprojected or self._unsent or self._projection_behind:
                    self.project_pending()
        finally:
            projector, self._projector = self._projector, None
            try:
                if projector is not None:
                    projector.finish()
            finally:
                if self._journal is not None:
                    self._journal.close()
                    self._journal = None
                if self._projection is not None:
                    self._projection.close()
                    self._projection = None
                self._is_open = False

    def wait_projected(self) -> int:
        """Flush, then wait until the database holds everything journaled; return its last seq.

        Raises ProjectionError if the projection process failed or did not answer
        within `projection_timeout_s`.
        """
        self.flush()
        if self._unprojected or self._unsent or self._projection_behind:
            self.project_pending()
        if self._projector is not None:
            return self._projector.sync()
        return self._require_projection().last_seq()

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
        With a projection process, "project" means hand the journaled bytes to
        it; its failures do not raise here but in `wait_projected` or `close`.
        """
        if not self._buffer:
            # A backtest calls this once per simulated minute, mostly with nothing to write: stay cheap.
            if self._journal is None:
                self._require_open()
            return
        journal = self._require_open()
        # A batch the journal refuses (a NaN, say) would be refused forever: drop it and say so.
        batch, self._buffer = self._buffer, []
        try:
            written = journal.append(batch)
        except JournalError:
            # A failed write may still have landed some lines: trust the journal for what it holds.
            self._accepted_seq = journal.last_seq
            self._projection_behind = True
            raise
        if self._projector is not None:
            # The child gets the bytes just written (and flushed): nothing is encoded twice.
            self._unsent.extend(written)
            self._unsent_records += len(batch)
            pending = self._unsent_records
        else:
            self._unprojected.extend(batch)
            pending = len(self._unprojected)
        now = time.monotonic()
        if (
            self._projection_behind
            or now - self._last_projected_at >= self.projection_lag_s
            or pending >= REBUILD_BATCH
        ):
            self.project_pending()
        elif self._projector is not None and self._projector.backlog:
            # What the pipe had no room for goes as the child makes room, not all at close.
            self._projector.pump()

    def project_pending(self) -> None:
        """Project every journaled record the database still lacks; a failure is logged and re-raised.

        With a projection process: send it those records, without waiting for it.
        """
        journal = self._require_open()
        if self._projector is not None:
            chunks, self._unsent, self._unsent_records = self._unsent, [], 0
            if self._projection_behind:
                # Lines of a failed write may be in the journal and not in `chunks`: the child reads them there.
                self._projector.catch_up(journal.last_seq)
                self._projection_behind = False
            else:
                self._projector.send(chunks)
            self._last_projected_at = time.monotonic()
            return
        projection = self._require_projection()
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
        if self._projector is not None:
            # Let the child settle first: from here on it projects only seqs past what the rebuild covers.
            self.wait_projected()
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
        """Return the projection (opening the database if needed) for read queries.

        With a projection process running, this first waits until it has projected everything journaled.
        """
        if self._projector is not None:
            self.wait_projected()
        return self._open_projection()

    def heartbeat(self, wall_ms: int, pid: int, detail: str = "") -> None:
        """Tell readers (the control room) the daemon is alive and how far it has journaled."""
        self._require_open()
        self._open_projection().beat("daemon", wall_ms, pid, self.last_seq, detail)

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
            if self._projector is not None:
                # The child creates the tables: a second create_all racing it could fail on "already exists".
                self._projector.sync()
            self._projection = Projection(self.database_url)
        return self._projection

    def _require_open(self) -> Journal:
        if self._journal is None or (self._projection is None and self._projector is None):
            raise JournalError("the event store is not open: call open() first")
        return self._journal

    def _require_projection(self) -> Projection:
        if self._projection is None:
            raise JournalError("the event store is not open: call open() first")
        return self._projection

    def _catch_up(self) -> int:
        return project_journal(self._require_open(), self._require_projection())
