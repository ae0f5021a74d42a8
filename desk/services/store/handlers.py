"""How each event type changes the projection tables.

A handler turns one journal record into keyed operations on a `Plan`. Entity
inserts are upserts on the entity's key (last write wins), so a duplicate id
in the journal — a feed re-seeding candles after a restart, say — updates a
row instead of wedging the projection on a key conflict forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Executable, String, Table, bindparam, delete, func, insert, or_, update

from desk.core.types import OrderPurpose
from desk.services.store import schema as s
from desk.services.store.equity_marks import series_row

if TYPE_CHECKING:
    from desk.services.store.projection import Plan

__all__ = ["HANDLERS", "Handler", "Statements"]

Record = dict[str, Any]
Status = dict[str, str | None]
Handler = Callable[["Statements", "Plan", Record, Status], None]

_FEATURES_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
# A fill leaving less than this unfilled completes the order (float dust from partial fills).
_FILLED_EPSILON = 1e-12
_ENTRY = OrderPurpose.ENTRY.value

# Record fields copied as they are into rows (the handlers add what is derived).
_EQUITY_FIELDS = ("seq", "ts_event", "equity", "cash", "positions_value", "high_water_mark", "drawdown_pct")
_EQUITY_FIELDS += ("open_positions",)
_INTENT_FIELDS = ("intent_id", "seq", "ts_event", "worker", "symbol", "side", "reference_price", "stop_price")
_INTENT_FIELDS += ("take_profit", "confidence", "reason")
_ORDER_FIELDS = ("side", "order_type", "purpose", "qty", "limit_price", "stop_price", "position_id", "oco_group")
_FILL_FIELDS = ("fill_id", "seq", "ts_event", "order_id", "worker", "symbol", "side", "purpose", "qty", "price")
_FILL_FIELDS += ("fee", "fee_currency", "liquidity", "position_id")
_POSITION_FIELDS = ("position_id", "worker", "symbol", "qty", "entry_price", "stop_price", "take_profit")
_POSITION_FIELDS += ("entry_fee", "risk_usd")
_TRADE_FIELDS = ("position_id", "seq", "worker", "symbol", "qty", "entry_ts", "entry_price", "exit_price")
_TRADE_FIELDS += ("realized_pnl", "fees", "net_pnl", "r_multiple", "exit_reason")


class Statements:
    """The compiled-once statements handlers queue; upserts need the dialect's `insert`."""

    def __init__(self, dialect_insert: Callable[[Table], Any]) -> None:
        def upsert(table: Table, only: tuple[str, ...] = ()) -> Executable:
            statement = dialect_insert(table)
            keys = [column.name for column in table.primary_key.columns]
            names = only or tuple(c.name for c in table.columns if not c.primary_key)
            return statement.on_conflict_do_update(
                index_elements=keys, set_={name: statement.excluded[name] for name in names}
            )

        def by_key(table: Table, key: str) -> Any:
            return update(table).where(table.c[key] == bindparam("k_id"))

        def p(name: str) -> Any:
            return bindparam(f"p_{name}")

        self.events_insert = insert(s.events)
        self.status_update = (
            update(s.runtime_status).where(s.runtime_status.c.key == bindparam("k_key")).values(value=p("value"))
        )
        self.candle_upsert = upsert(s.candles)
        # An account reset ends whatever was open, whatever it was.
        self.positions_reset = (
            update(s.positions)
            .where(s.positions.c.status == "open")
            .values(status="closed", qty=0.0, exit_ts=p("ts"), exit_reason=p("reason"), updated_seq=p("seq"))
        )
        self.orders_reset = (
            update(s.orders)
            # Two comparisons, not IN: an expanding IN cannot be compiled once and run through the driver.
            .where((s.orders.c.status == "open") | (s.orders.c.status == "partially_filled"))
            .values(status="cancelled", reason=p("reason"), updated_seq=p("seq"))
        )
        self.equity_insert = upsert(s.equity)
        self.series_insert = insert(s.equity_series)
        # The per-minute rows at the marks of a newer chunk: the chunk replaces them (see equity_marks.py).
        ts = s.equity.c.ts_event
        self.equity_rows_replaced = delete(s.equity).where(
            ts.between(bindparam("p_first"), bindparam("p_last")), (ts - bindparam("p_first")) % p("step") == 0
        )
        self.fault_insert = insert(s.worker_faults)
        self.risk_insert = insert(s.risk_state)
        self.worker_state_upsert = upsert(s.worker_state)

        self.intent_upsert = upsert(s.intents)
        self.intent_scored = by_key(s.intents, "intent_id").values(
            score=p("score"),
            vetoed=p("vetoed"),
            features=p("features"),
            status=func.coalesce(bindparam("p_status", type_=String), s.intents.c.status),
        )
        self.intent_denied = by_key(s.intents, "intent_id").values(
            status="denied", deny_rule=p("rule"), deny_reason=p("reason")
        )
        # An order's correlation_id is its intent: entry orders move the intent along, never back.
        self.intent_submitted = (
            by_key(s.intents, "intent_id").where(s.intents.c.status == "proposed").values(status="submitted")
        )
        self.intent_filled = (
            by_key(s.intents, "intent_id")
            .where(or_(s.intents.c.status == "proposed", s.intents.c.status == "submitted"))
            .values(status="filled")
        )
        self.features_upsert = upsert(s.features, only=("seq", "worker", "symbol", "features"))
        self.features_outcome = by_key(s.features, "intent_id").values(
            net_pnl=p("net_pnl"), r_multiple=p("r_multiple"), won=p("won")
        )

        self.order_upsert = upsert(s.orders)
        self.order_rejected = upsert(s.orders, only=("status", "reason", "updated_seq"))
        self.order_filled = by_key(s.orders, "order_id").values(
            filled_qty=s.orders.c.filled_qty + p("qty"), status=p("status"), updated_seq=p("seq")
        )
        self.order_cancelled = by_key(s.orders, "order_id").values(
            status="cancelled", reason=p("reason"), updated_seq=p("seq")
        )
        self.order_amended = by_key(s.orders, "order_id").values(stop_price=p("stop_price"), updated_seq=p("seq"))
        self.fill_upsert = upsert(s.fills)

        self.position_upsert = upsert(s.positions)
        self.position_reduced = by_key(s.positions, "position_id").values(
            qty=p("remaining_qty"), fees=s.positions.c.fees + p("fee"), updated_seq=p("seq")
        )
        self.stop_moved = by_key(s.positions, "position_id").values(stop_price=p("stop_price"), updated_seq=p("seq"))
        self.position_closed = by_key(s.positions, "position_id").values(
            status="closed",
            qty=0.0,
            exit_ts=p("exit_ts"),
            exit_price=p("exit_price"),
            realized_pnl=p("realized_pnl"),
            fees=p("fees"),
            exit_reason=p("exit_reason"),
            updated_seq=p("seq"),
        )
        self.trade_upsert = upsert(s.trades)
        self.command_applied = by_key(s.commands, "command_id").values(
            status=p("status"), detail=p("detail"), acked_seq=p("seq")
        )


# --- lifecycle --------------------------------------------------------------------------


def _runtime_started(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    status["mode"] = r["mode"]
    status["config_hash"] = r["config_hash"]
    status["started_wall_ms"] = str(r["wall_ms"])
    status["stopped_wall_ms"] = None  # running again: the control room tells running from stopped by this


def _runtime_stopped(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    status["stopped_wall_ms"] = str(r["wall_ms"])


def _command_applied(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"k_id": r["command_id"], "p_status": r["status"], "p_detail": r["detail"], "p_seq": r["seq"]}
    plan.add(s.commands, st.command_applied, r["command_id"], params)


# --- market data, account, risk, workers ------------------------------------------------


def _candle_closed(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = {k: r[k] for k in ("symbol", "ts", "open", "high", "low", "close", "volume")}
    plan.add(s.candles, st.candle_upsert, (r["symbol"], r["ts"]), row)


def _equity_sampled(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = {k: r[k] for k in _EQUITY_FIELDS}
    plan.add(s.equity, st.equity_insert, r["ts_event"], row)


def _equity_series(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    """A backtest's chunk of marks: one equity_series row of columns, not a row per mark."""
    row = series_row(r)
    if row is None:
        return
    params = {"p_first": row["first_ts"], "p_last": row["last_ts"], "p_step": max(row["step_ms"], 1)}
    plan.add_all(s.equity, st.equity_rows_replaced, params)
    plan.add(s.equity_series, st.series_insert, r["seq"], row)


def _account_reset(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"p_ts": r["ts_event"], "p_reason": f"account reset: {r['reason']}", "p_seq": r["seq"]}
    plan.add_all(s.positions, st.positions_reset, params)
    plan.add_all(s.orders, st.orders_reset, {"p_reason": params["p_reason"], "p_seq": r["seq"]})


def _risk_state_changed(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = {k: r[k] for k in ("seq", "ts_event", "previous", "state", "rule", "reason")}
    plan.add(s.risk_state, st.risk_insert, r["seq"], row)


def _worker_faulted(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = {k: r[k] for k in ("seq", "ts_event", "worker", "symbol", "error_type", "message", "consecutive")}
    plan.add(s.worker_faults, st.fault_insert, r["seq"], row)


def _worker_state_changed(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = {"worker": r["worker"], "state": r["state"], "reason": r["reason"], "updated_seq": r["seq"]}
    plan.add(s.worker_state, st.worker_state_upsert, r["worker"], row)


# --- decisions --------------------------------------------------------------------------


def _intent_proposed(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = {k: r[k] for k in _INTENT_FIELDS}
    row.update(score=None, vetoed=None, features=None, status="proposed", deny_rule=None, deny_reason=None)
    plan.add(s.intents, st.intent_upsert, r["intent_id"], row)


def _intent_scored(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    features = _FEATURES_ENCODER.encode(r["features"])
    vetoed = bool(r["vetoed"])
    params = {
        "k_id": r["intent_id"],
        "p_score": r["score"],
        "p_vetoed": vetoed,
        "p_features": features,
        "p_status": "vetoed" if vetoed else None,
    }
    plan.add(s.intents, st.intent_scored, r["intent_id"], params)
    row = {"intent_id": r["intent_id"], "seq": r["seq"], "worker": r["worker"], "symbol": r["symbol"]}
    row.update(features=features, net_pnl=None, r_multiple=None, won=None)
    plan.add(s.features, st.features_upsert, r["intent_id"], row)


def _order_denied(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"k_id": r["intent_id"], "p_rule": r["rule"], "p_reason": r["reason"]}
    plan.add(s.intents, st.intent_denied, r["intent_id"], params)


def _learner_outcome(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"k_id": r["intent_id"], "p_net_pnl": r["net_pnl"], "p_r_multiple": r["r_multiple"], "p_won": r["won"]}
    plan.add(s.features, st.features_outcome, r["intent_id"], params)


# --- orders and fills ---------------------------------------------------------------------


def _order_row(r: Record, **values: Any) -> Record:
    row = {
        "order_id": r["order_id"],
        "seq": r["seq"],
        "ts_event": r["ts_event"],
        "worker": r["worker"],
        "symbol": r["symbol"],
        "correlation_id": r["correlation_id"],
        "updated_seq": r["seq"],
        "filled_qty": 0.0,
    }
    row.update(values)
    return row


def _order_submitted(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = _order_row(r, status="open", reason="")
    for k in _ORDER_FIELDS:
        row[k] = r[k]
    plan.add(s.orders, st.order_upsert, r["order_id"], row)
    if r["purpose"] == _ENTRY and r["correlation_id"]:
        plan.add(s.intents, st.intent_submitted, r["correlation_id"], {"k_id": r["correlation_id"]})


def _order_rejected(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    # Rejected before submission (the broker refused it outright): the upsert inserts a bare row.
    row = _order_row(r, status="rejected", reason=r["reason"], side="", order_type="", purpose="", qty=0.0)
    row.update(limit_price=None, stop_price=None, position_id="", oco_group="")
    plan.add(s.orders, st.order_rejected, r["order_id"], row)


def _order_filled(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    order_status = "filled" if r["remaining_qty"] <= _FILLED_EPSILON else "partially_filled"
    params = {"k_id": r["order_id"], "p_qty": r["qty"], "p_status": order_status, "p_seq": r["seq"]}
    plan.add(s.orders, st.order_filled, r["order_id"], params)
    row = {k: r[k] for k in _FILL_FIELDS}
    row["event_id"] = r["id"]
    plan.add(s.fills, st.fill_upsert, r["fill_id"], row)
    if r["purpose"] == _ENTRY and r["correlation_id"] and order_status == "filled":
        plan.add(s.intents, st.intent_filled, r["correlation_id"], {"k_id": r["correlation_id"]})


def _order_cancelled(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"k_id": r["order_id"], "p_reason": r["reason"], "p_seq": r["seq"]}
    plan.add(s.orders, st.order_cancelled, r["order_id"], params)


def _order_amended(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"k_id": r["order_id"], "p_stop_price": r["stop_price"], "p_seq": r["seq"]}
    plan.add(s.orders, st.order_amended, r["order_id"], params)


# --- positions ------------------------------------------------------------------------------


def _position_opened(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    row = {k: r[k] for k in _POSITION_FIELDS}
    row.update(status="open", entry_ts=r["ts_event"], fees=r["entry_fee"], updated_seq=r["seq"])
    row.update(exit_ts=None, exit_price=None, realized_pnl=None, exit_reason=None)
    plan.add(s.positions, st.position_upsert, r["position_id"], row)


def _position_reduced(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"k_id": r["position_id"], "p_remaining_qty": r["remaining_qty"], "p_fee": r["fee"], "p_seq": r["seq"]}
    plan.add(s.positions, st.position_reduced, r["position_id"], params)


def _stop_moved(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {"k_id": r["position_id"], "p_stop_price": r["stop_price"], "p_seq": r["seq"]}
    plan.add(s.positions, st.stop_moved, r["position_id"], params)


def _position_closed(st: Statements, plan: Plan, r: Record, status: Status) -> None:
    params = {
        "k_id": r["position_id"],
        "p_exit_ts": r["ts_event"],
        "p_exit_price": r["exit_price"],
        "p_realized_pnl": r["realized_pnl"],
        "p_fees": r["fees"],
        "p_exit_reason": r["exit_reason"],
        "p_seq": r["seq"],
    }
    plan.add(s.positions, st.position_closed, r["position_id"], params)
    row = {k: r[k] for k in _TRADE_FIELDS}
    row["exit_ts"] = r["ts_event"]
    plan.add(s.trades, st.trade_upsert, r["position_id"], row)


HANDLERS: dict[str, Handler] = {
    "RuntimeStarted": _runtime_started,
    "RuntimeStopped": _runtime_stopped,
    "CommandApplied": _command_applied,
    "CandleClosed": _candle_closed,
    "AccountReset": _account_reset,
    "EquitySampled": _equity_sampled,
    "EquitySeries": _equity_series,
    "RiskStateChanged": _risk_state_changed,
    "WorkerFaulted": _worker_faulted,
    "WorkerStateChanged": _worker_state_changed,
    "IntentProposed": _intent_proposed,
    "IntentScored": _intent_scored,
    "OrderDenied": _order_denied,
    "LearnerOutcomeRecorded": _learner_outcome,
    "OrderSubmitted": _order_submitted,
    "OrderRejected": _order_rejected,
    "OrderFilled": _order_filled,
    "OrderCancelled": _order_cancelled,
    "OrderAmended": _order_amended,
    "PositionOpened": _position_opened,
    "PositionReduced": _position_reduced,
    "StopMoved": _stop_moved,
    "PositionClosed": _position_closed,
}
