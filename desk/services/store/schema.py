"""Tables of the SQL projection (SQLAlchemy Core).

Every projection table is keyed by something in the journal (seq, order id,
position id...) and has no autoincrement ids and no wall-clock defaults, so
rebuilding from the journal reproduces identical rows. `commands` is the
exception on purpose: it is an inbox operators write into, not a projection,
and a rebuild never drops it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text

__all__ = [
    "PROJECTION_TABLES",
    "RUNTIME_STATUS_KEYS",
    "SCHEMA_VERSION",
    "candles",
    "commands",
    "equity",
    "equity_series",
    "events",
    "features",
    "fills",
    "heartbeat",
    "intents",
    "metadata",
    "orders",
    "positions",
    "risk_state",
    "runtime_status",
    "trades",
    "worker_faults",
    "worker_state",
]

# Bump when a projection table changes shape: a store whose database says otherwise rebuilds on open.
SCHEMA_VERSION = "4"

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String, nullable=False, unique=True),
    Column("type", String, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("ts_init", BigInteger, nullable=False),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("correlation_id", String, nullable=False),
    Column("causation_id", String, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_events_type", "type"),
    Index("ix_events_worker", "worker"),
)

candles = Table(
    "candles",
    metadata,
    Column("symbol", String, primary_key=True),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Index("ix_candles_ts", "ts"),
)

intents = Table(
    "intents",
    metadata,
    Column("intent_id", String, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("side", String, nullable=False),
    Column("reference_price", Float, nullable=False),
    Column("stop_price", Float),
    Column("take_profit", Float),
    Column("confidence", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("score", Float),
    Column("vetoed", Boolean),
    Column("features", Text),
    # proposed -> vetoed | denied | submitted -> filled
    Column("status", String, nullable=False),
    Column("deny_rule", String),
    Column("deny_reason", Text),
    # The control room's learner view lists a worker's intents.
    Index("ix_intents_worker", "worker"),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("side", String, nullable=False),
    Column("order_type", String, nullable=False),
    Column("purpose", String, nullable=False),
    Column("qty", Float, nullable=False),
    Column("filled_qty", Float, nullable=False),
    Column("limit_price", Float),
    Column("stop_price", Float),
    Column("position_id", String, nullable=False),
    Column("oco_group", String, nullable=False),
    # open | partially_filled | filled | cancelled | rejected
    Column("status", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("correlation_id", String, nullable=False),
    Column("updated_seq", BigInteger, nullable=False),
    Index("ix_orders_status", "status"),
)

fills = Table(
    "fills",
    metadata,
    Column("fill_id", String, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", String, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("order_id", String, nullable=False),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("side", String, nullable=False),
    Column("purpose", String, nullable=False),
    Column("qty", Float, nullable=False),
    Column("price", Float, nullable=False),
    Column("fee", Float, nullable=False),
    Column("fee_currency", String, nullable=False),
    Column("liquidity", String, nullable=False),
    Column("position_id", String, nullable=False),
    Index("ix_fills_order_id", "order_id"),
)

positions = Table(
    "positions",
    metadata,
    Column("position_id", String, primary_key=True),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("status", String, nullable=False),  # open | closed
    Column("qty", Float, nullable=False),  # held now: 0 once closed (the traded size is in trades)
    Column("entry_ts", BigInteger, nullable=False),
    Column("entry_price", Float, nullable=False),
    Column("stop_price", Float, nullable=False),
    Column("take_profit", Float),
    Column("entry_fee", Float, nullable=False),
    Column("risk_usd", Float, nullable=False),
    Column("exit_ts", BigInteger),
    Column("exit_price", Float),
    Column("realized_pnl", Float),
    Column("fees", Float, nullable=False),
    Column("exit_reason", String),
    Column("updated_seq", BigInteger, nullable=False),
    # The control room lists open positions; closed ones pile up, open ones stay a handful.
    Index("ix_positions_status", "status"),
)

trades = Table(
    "trades",
    metadata,
    Column("position_id", String, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("qty", Float, nullable=False),
    Column("entry_ts", BigInteger, nullable=False),
    Column("exit_ts", BigInteger, nullable=False),
    Column("entry_price", Float, nullable=False),
    Column("exit_price", Float, nullable=False),
    Column("realized_pnl", Float, nullable=False),
    Column("fees", Float, nullable=False),
    Column("net_pnl", Float, nullable=False),
    Column("r_multiple", Float, nullable=False),
    Column("exit_reason", String, nullable=False),
    # (worker, exit_ts): a worker's trades in exit order, for its sub-ledger curve and filtered ledgers.
    Index("ix_trades_worker_exit_ts", "worker", "exit_ts"),
    Index("ix_trades_symbol", "symbol"),
    Index("ix_trades_exit_ts", "exit_ts"),
)

equity = Table(
    "equity",
    metadata,
    # One mark per minute close from an EquitySampled (the daemon). A backtest's EquitySeries marks
    # are in equity_series; the readers in equity_queries.py merge both into one curve.
    Column("ts_event", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("equity", Float, nullable=False),
    Column("cash", Float, nullable=False),
    Column("positions_value", Float, nullable=False),
    Column("high_water_mark", Float, nullable=False),
    Column("drawdown_pct", Float, nullable=False),
    Column("open_positions", Integer, nullable=False),
    Index("ix_equity_seq", "seq"),
)

# One row per EquitySeries chunk (a backtest's marks, a day at a time): a million per-minute rows
# would cost a backtest more than its trading, a few hundred rows of columns cost next to nothing.
# The columns are little-endian float64 (open_positions int64) blobs, one value per mark, marks at
# first_ts + i * step_ms; drawdown is derived on read exactly as the daemon derives it.
# At any ts the mark of the highest seq wins, as an upsert of per-minute rows would: projecting a
# chunk deletes the older equity rows it covers, so a row beside a chunk mark is always the newer;
# overlapping chunks are settled on read (see equity_marks.py).
equity_series = Table(
    "equity_series",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    # The small columns first: SQLite then finds a chunk without reading its blobs' overflow pages.
    Column("first_ts", BigInteger, nullable=False),
    Column("last_ts", BigInteger, nullable=False),
    Column("step_ms", BigInteger, nullable=False),
    Column("marks", Integer, nullable=False),  # how many marks each blob holds
    Column("equity", LargeBinary, nullable=False),
    Column("cash", LargeBinary, nullable=False),
    Column("positions_value", LargeBinary, nullable=False),
    Column("high_water_mark", LargeBinary, nullable=False),
    Column("open_positions", LargeBinary, nullable=False),
    Index("ix_equity_series_first_ts", "first_ts"),
    Index("ix_equity_series_last_ts", "last_ts"),
)

worker_faults = Table(
    "worker_faults",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("error_type", String, nullable=False),
    Column("message", Text, nullable=False),
    Column("consecutive", Integer, nullable=False),
    Index("ix_worker_faults_worker", "worker"),
)

worker_state = Table(
    "worker_state",
    metadata,
    Column("worker", String, primary_key=True),
    Column("state", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("updated_seq", BigInteger, nullable=False),
)

risk_state = Table(
    "risk_state",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("previous", String, nullable=False),
    Column("state", String, nullable=False),
    Column("rule", String, nullable=False),
    Column("reason", Text, nullable=False),
)

features = Table(
    "features",
    metadata,
    Column("intent_id", String, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("worker", String, nullable=False),
    Column("symbol", String, nullable=False),
    Column("features", Text, nullable=False),
    Column("net_pnl", Float),
    Column("r_multiple", Float),
    Column("won", Boolean),
)

runtime_status = Table(
    "runtime_status",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text),
)

# The inbox: operators insert, the daemon marks rows applied/rejected. Autoincrement (and
# sqlite_autoincrement, so ids are never reused) is fine here because rebuild never touches it.
commands = Table(
    "commands",
    metadata,
    Column("command_id", Integer, primary_key=True, autoincrement=True),
    Column("created_wall_ms", BigInteger, nullable=False),
    Column("command", String, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String, nullable=False),  # pending | applied | rejected
    Column("detail", Text, nullable=False),
    Column("acked_seq", BigInteger),
    Index("ix_commands_status", "status"),
    sqlite_autoincrement=True,
)

# The daemon's liveness, written on wall-clock time outside the journal (a heartbeat is not an
# event worth replaying). Like the inbox, it is not a projection and a rebuild keeps it.
heartbeat = Table(
    "heartbeat",
    metadata,
    Column("component", String, primary_key=True),
    Column("wall_ms", BigInteger, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("detail", Text, nullable=False),
)

# Everything a rebuild drops and recreates: all tables but the commands inbox and the heartbeat.
PROJECTION_TABLES: tuple[Table, ...] = tuple(t for t in metadata.sorted_tables if t not in (commands, heartbeat))

RUNTIME_STATUS_KEYS: tuple[str, ...] = (
    "schema_version",
    "last_seq",
    "last_ts_event",
    "last_event_type",
    "mode",
    "config_hash",
    "started_wall_ms",
    "stopped_wall_ms",
)
