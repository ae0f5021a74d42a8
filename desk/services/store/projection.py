"""The SQL projection: journal records folded into queryable tables (SQLAlchemy Core).

`project()` is on the hot path (every published batch, thousands per second in
a backtest), so a batch becomes one transaction with one executemany per
(table, statement) wherever order allows: the plan below merges an operation
into an earlier run of the same statement unless a later run touched the same
row. Every statement touches only the row named by its key, and rows of
different tables never depend on each other, so the result is the same for
any batching — which is what makes `rebuild` reproduce an incremental
projection exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from desk.core.errors import DeskError
from desk.services.store import schema
from desk.services.store.encoding import encode_json
from desk.services.store.equity_marks import MARK_COLUMNS
from desk.services.store.handlers import HANDLERS, Statements

__all__ = ["ENVELOPE_FIELDS", "EVENT_COLUMNS", "CommandRow", "Projection", "ProjectionError", "open_engine"]

# Columns of the events table; everything else in a record goes into its JSON payload.
EVENT_COLUMNS = ("seq", "id", "type", "ts_event", "ts_init", "worker", "symbol", "correlation_id", "causation_id")
EVENT_COLUMNS += ("payload",)
ENVELOPE_FIELDS = frozenset(EVENT_COLUMNS[:-1])
# Fields kept out of the payload per event type because a table holds them already: an
# EquitySeries' mark columns are in equity_series (same seq), a million values not worth writing twice.
_NOT_IN_PAYLOAD: dict[str, tuple[str, ...]] = {"EquitySeries": (*EVENT_COLUMNS[:-1], *MARK_COLUMNS)}
COMMAND_STATUSES = ("pending", "applied", "rejected")


class ProjectionError(DeskError):
    """The projection database could not be read or written (the journal is unaffected)."""


@dataclass(frozen=True, slots=True)
class CommandRow:
    """One operator command from the inbox."""

    command_id: int
    created_wall_ms: int
    command: str
    payload: dict[str, Any]
    status: str
    detail: str
    acked_seq: int | None


def open_engine(database_url: str) -> Engine:
    """Create an engine; for SQLite make the parent directory and turn on WAL for every connection."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if url.get_backend_name() == "sqlite":
        # WAL lets the dashboard read while the daemon writes; NORMAL skips an fsync per commit,
        # which is safe because the journal, not the database, is the authority.
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


class _TablePlan:
    """The operations of one table, grouped into executemany runs without reordering any row's history."""

    __slots__ = ("last_run_of_key", "last_run_of_statement", "runs")

    def __init__(self) -> None:
        self.runs: list[tuple[Executable, list[dict[str, Any]]]] = []
        self.last_run_of_statement: dict[int, int] = {}
        self.last_run_of_key: dict[Any, int] = {}


def _encode_sorted(value: Any) -> str:
    return encode_json(value, sort_keys=True)


class Plan:
    """All operations of one batch, by table; handlers add to it, `project` executes it."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables: dict[str, _TablePlan] = {}

    def add(self, table: Table, statement: Executable, key: Any, params: dict[str, Any]) -> None:
        """Queue `statement` with `params`, touching the row of `table` identified by `key`."""
        # Called for every row of every batch: one call, no helper, is measurably cheaper.
        plan = self._tables.get(table.name)
        if plan is None:
            plan = self._tables[table.name] = _TablePlan()
        run = plan.last_run_of_statement.get(id(statement))
        # Joining an earlier run is safe only if no later run has touched this row.
        if run is not None and plan.last_run_of_key.get(key, -1) <= run:
            plan.runs[run][1].append(params)
        else:
            run = len(plan.runs)
            plan.runs.append((statement, [params]))
            plan.last_run_of_statement[id(statement)] = run
        plan.last_run_of_key[key] = run

    def add_all(self, table: Table, statement: Executable, params: dict[str, Any]) -> None:
        """Queue a statement that changes many rows of `table` (a reset), in order with everything else."""
        plan = self._tables.get(table.name)
        if plan is None:
            plan = self._tables[table.name] = _TablePlan()
        if plan.runs and plan.runs[-1][0] is statement and not plan.last_run_of_statement:
            # Straight after the same barrier with nothing queued between: one executemany runs them in order.
            plan.runs[-1][1].append(params)
            return
        plan.runs.append((statement, [params]))
        plan.last_run_of_statement.clear()
        plan.last_run_of_key.clear()

    def executions(self) -> Iterator[tuple[Executable, list[dict[str, Any]]]]:
        """Yield (statement, rows) pairs in an order that respects each row's history."""
        for plan in self._tables.values():
            yield from plan.runs


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled once for the driver, and how to turn a row dict into its parameters."""

    statement: Executable  # kept so the id() the cache is keyed by stays unique
    sql: str
    order: tuple[str, ...] | None  # parameter names in order (positional drivers), None for named
    constants: dict[str, Any]  # values bound in the statement itself (a fixed status, say)
    defaults: dict[str, Any]  # every parameter, for rows that leave one out
    getter: Callable[[dict[str, Any]], tuple[Any, ...]] | None


def _single_getter(name: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def get(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row[name],)

    return get


class Projection:
    """The SQL projection of the journal on `database_url` (SQLite or PostgreSQL).

    Creates missing tables on construction. `project` ignores records at or
    below `last_seq()`, so replaying a batch after a failure is harmless.
    """

    def __init__(self, database_url: str) -> None:
        self.engine = open_engine(database_url)
        backend = self.engine.dialect.name
        if backend == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        elif backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            raise ProjectionError(f"database {backend!r} is not supported (sqlite or postgresql)")
        self._statements = Statements(dialect_insert)
        # Compiled SQL per statement object; the statement itself is kept so its id() stays unique.
        self._compiled: dict[int, _Compiled] = {}
        self._connection: Connection | None = None
        try:
            fresh = not inspect(self.engine).has_table(schema.events.name)
            schema.metadata.create_all(self.engine)
            with self.engine.begin() as connection:
                self._ensure_status_rows(connection, fresh)
            self._last_seq = self._read_last_seq()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise ProjectionError(f"cannot open projection database: {exc}") from exc

    # --- projecting --------------------------------------------------------------------

    def project(self, records: Sequence[dict[str, Any]]) -> None:
        """Fold a batch of journal records (in seq order) into the tables, in one transaction."""
        last_seq = self._last_seq
        fresh = [record for record in records if record["seq"] > last_seq]
        if not fresh:
            return
        plan = Plan()
        statements = self._statements
        status: dict[str, str | None] = {}
        # Every record is one events row and nothing else touches that table: its rows go straight
        # to one executemany as tuples, without a Plan entry or a dict per event.
        event_rows: list[tuple[Any, ...]] = []
        add_event = event_rows.append
        handlers = HANDLERS
        envelope = EVENT_COLUMNS[:-1]
        elsewhere = _NOT_IN_PAYLOAD
        encode = _encode_sorted
        for record in fresh:
            seq = record["seq"]
            event_type = record["type"]
            try:
                # A copy minus a few keys is three times cheaper than a comprehension over all of them.
                payload = record.copy()
                for name in elsewhere.get(event_type, envelope):
                    del payload[name]
                add_event(
                    (
                        seq,
                        record["id"],
                        event_type,
                        record["ts_event"],
                        record["ts_init"],
                        record["worker"],
                        record["symbol"],
                        record["correlation_id"],
                        record["causation_id"],
                        encode(payload),
                    )
                )
                handler = handlers.get(event_type)
                if handler is not None:
                    handler(statements, plan, record, status)
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                raise ProjectionError(f"seq {seq} ({event_type}): malformed record: {exc!r}") from exc
        last = fresh[-1]
        status["last_seq"] = str(last["seq"])
        status["last_ts_event"] = str(last["ts_event"])
        status["last_event_type"] = str(last["type"])
        for key, value in status.items():
            plan.add(schema.runtime_status, statements.status_update, key, {"k_key": key, "p_value": value})
        try:
            connection = self._writer()
            with connection.begin():
                self._execute_tuples(connection, statements.events_insert, EVENT_COLUMNS, event_rows)
                for statement, rows in plan.executions():
                    self._execute_many(connection, statement, rows)
        except SQLAlchemyError as exc:
            self._release_writer()  # whatever state it is in, the next batch starts on a fresh connection
            raise ProjectionError(f"cannot project seqs {fresh[0]['seq']}..{last['seq']}: {exc}") from exc
        self._last_seq = last["seq"]

    def _execute_many(self, connection: Connection, statement: Executable, rows: list[dict[str, Any]]) -> None:
        """Run one statement for many rows straight through the driver.

        The statement is compiled once per Projection; going around SQLAlchemy's
        per-row parameter processing is what keeps a 1M-bar backtest's
        projection from costing more than its trading.
        """
        compiled = self._compile(statement)
        if compiled.getter is None:
            connection.exec_driver_sql(compiled.sql, [{**compiled.defaults, **row} for row in rows])
            return
        getter = compiled.getter
        constants = compiled.constants
        if constants:
            rows = [{**constants, **row} for row in rows]
        try:
            # itemgetter pulls a row's parameters in C: the per-row cost that used to dominate a batch.
            params = list(map(getter, rows))
        except KeyError:
            # A row that leaves a parameter out binds the statement's default for it (None).
            params = [getter({**compiled.defaults, **row}) for row in rows]
        connection.exec_driver_sql(compiled.sql, params)

    def _execute_tuples(
        self, connection: Connection, statement: Executable, names: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Run one statement for rows given as tuples of `names`; as they are when the driver's order matches."""
        if not rows:
            return
        compiled = self._compile(statement)
        if compiled.order == names:
            connection.exec_driver_sql(compiled.sql, rows)
        else:
            self._execute_many(connection, statement, [dict(zip(names, row, strict=True)) for row in rows])

    def _compile(self, statement: Executable) -> _Compiled:
        compiled = self._compiled.get(id(statement))
        if compiled is None:
            sql = statement.compile(dialect=self.engine.dialect)
            order = tuple(sql.positiontup) if sql.positional and sql.positiontup else None
            defaults = dict(sql.params)
            getter: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
            if order is not None:
                getter = itemgetter(*order) if len(order) > 1 else _single_getter(order[0])
            constants = {name: value for name, value in defaults.items() if value is not None}
            compiled = _Compiled(statement, str(sql), order, constants, defaults, getter)
            self._compiled[id(statement)] = compiled
        return compiled

    def last_seq(self) -> int:
        """Return the highest seq projected (0 when empty)."""
        return self._last_seq

    def needs_rebuild(self) -> bool:
        """Return True when the tables were made by another schema version and must be rebuilt."""
        return self.status().get("schema_version") != schema.SCHEMA_VERSION

    def status(self) -> dict[str, str | None]:
        """Return the runtime_status rows as a dict."""
        return dict(self._read(lambda c: c.execute(select(schema.runtime_status)).all()))

    def drop_and_create(self) -> None:
        """Drop and recreate every projection table; the commands inbox is kept."""
        tables = list(schema.PROJECTION_TABLES)
        self._release_writer()
        try:
            schema.metadata.drop_all(self.engine, tables=tables)
            schema.metadata.create_all(self.engine, tables=tables)
            with self.engine.begin() as connection:
                self._ensure_status_rows(connection, fresh=True)
        except SQLAlchemyError as exc:
            raise ProjectionError(f"cannot recreate projection tables: {exc}") from exc
        self._last_seq = 0

    def close(self) -> None:
        """Release the database connections."""
        self._release_writer()
        self.engine.dispose()

    # --- the commands inbox ------------------------------------------------------------

    def submit_command(self, command: str, payload: dict[str, Any], wall_ms: int) -> int:
        """Queue an operator command as pending and return its command_id."""
        if not command:
            raise ValueError("command must be a non-empty name")
        try:
            payload_text = _encode_sorted(payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"command {command!r}: payload is not finite JSON: {exc}") from exc
        row = {
            "created_wall_ms": wall_ms,
            "command": command,
            "payload": payload_text,
            "status": "pending",
            "detail": "",
            "acked_seq": None,
        }
        result = self._write(lambda c: c.execute(insert(schema.commands).values(row)))
        return int(result.inserted_primary_key[0])

    def pending_commands(self) -> list[CommandRow]:
        """Return the pending commands, oldest first."""
        query = select(schema.commands).where(schema.commands.c.status == "pending")
        rows = self._read(lambda c: c.execute(query.order_by(schema.commands.c.command_id)).all())
        return [
            CommandRow(
                command_id=row.command_id,
                created_wall_ms=row.created_wall_ms,
                command=row.command,
                payload=json.loads(row.payload),
                status=row.status,
                detail=row.detail,
                acked_seq=row.acked_seq,
            )
            for row in rows
        ]

    def mark_command(self, command_id: int, status: str, detail: str, acked_seq: int | None) -> None:
        """Record a command's outcome (`applied` or `rejected`) and the seq of its CommandApplied event."""
        if status not in COMMAND_STATUSES[1:]:
            raise ValueError(f"command status must be applied or rejected, not {status!r}")
        statement = (
            update(schema.commands)
            .where(schema.commands.c.command_id == command_id)
            .values(status=status, detail=detail, acked_seq=acked_seq)
        )
        result = self._write(lambda c: c.execute(statement))
        if result.rowcount == 0:
            raise ProjectionError(f"no command #{command_id} in the inbox")

    def beat(self, component: str, wall_ms: int, pid: int, last_seq: int, detail: str) -> None:
        """Record that `component` is alive; one row per component, replaced each time."""
        table = schema.heartbeat
        row = {"component": component, "wall_ms": wall_ms, "pid": pid, "last_seq": last_seq, "detail": detail}

        def upsert(connection: Any) -> None:
            updated = connection.execute(update(table).where(table.c.component == component).values(row))
            if updated.rowcount == 0:
                connection.execute(insert(table).values(row))

        self._write(upsert)

    # --- internals ---------------------------------------------------------------------

    def _writer(self) -> Connection:
        # One long-lived connection for projecting: checking one out of the pool per batch costs
        # as much as a small batch's inserts.
        if self._connection is None or self._connection.closed or self._connection.invalidated:
            self._connection = self.engine.connect()
        return self._connection

    def _release_writer(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _read(self, query: Callable[[Any], Any]) -> Any:
        try:
            with self.engine.connect() as connection:
                return query(connection)
        except SQLAlchemyError as exc:
            raise ProjectionError(f"cannot read projection database: {exc}") from exc

    def _write(self, statement: Callable[[Any], Any]) -> Any:
        try:
            with self.engine.begin() as connection:
                return statement(connection)
        except SQLAlchemyError as exc:
            raise ProjectionError(f"cannot write projection database: {exc}") from exc

    def _read_last_seq(self) -> int:
        value = self._read(lambda c: c.execute(select(func.max(schema.events.c.seq))).scalar())
        return int(value or 0)

    @staticmethod
    def _ensure_status_rows(connection: Any, fresh: bool) -> None:
        # Rows exist up front so each batch is a plain executemany UPDATE, portable across databases.
        table = schema.runtime_status
        present = set(connection.execute(select(table.c.key)).scalars())
        missing = [key for key in schema.RUNTIME_STATUS_KEYS if key not in present]
        if missing:
            rows = [{"key": key, "value": None} for key in missing]
            connection.execute(insert(table), rows)
        if fresh:
            connection.execute(update(table).where(table.c.key == "schema_version").values(value=schema.SCHEMA_VERSION))
