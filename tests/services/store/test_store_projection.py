"""The projection and the event store: rows per event, rebuild equality, catch-up, the commands inbox."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from desk.config import StoreConfig
from desk.core import events as ev
from desk.core.errors import JournalError
from desk.core.events import Event
from desk.services.store import schema
from desk.services.store.journal import Journal
from desk.services.store.projection import Projection, ProjectionError
from desk.services.store.store import EventStore
from tests.services.store.store_samples import T0, envelope, mini_session, records, sample_event, table_snapshot

MakeStore = Callable[..., EventStore]


def rows(store: EventStore, table: Any) -> list[dict[str, Any]]:
    with store.projection.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(table))]


def one(store: EventStore, table: Any) -> dict[str, Any]:
    found = rows(store, table)
    assert len(found) == 1, found
    return found[0]


def write_through(store: EventStore, events: list[Event], batch: int) -> None:
    for start in range(0, len(events), batch):
        store.append(records(events[start : start + batch]))
        store.flush()


def test_flush_when_a_mini_session_is_written_then_every_table_holds_the_expected_rows(make_store: MakeStore) -> None:
    store = make_store()
    store.open()

    write_through(store, mini_session(), batch=3)

    orders = {row["order_id"]: row for row in rows(store, schema.orders)}
    assert {k: (v["status"], v["filled_qty"]) for k, v in orders.items()} == {
        "o1": ("filled", 2.0),
        "o2": ("cancelled", 0.0),
        "o3": ("filled", 2.0),
    }
    assert orders["o2"]["stop_price"] == 101.0 and orders["o2"]["updated_seq"] == 13
    assert orders["o2"]["reason"] == "oco sibling filled" and orders["o2"]["oco_group"] == "g1"
    assert orders["o1"]["correlation_id"] == "i1" and orders["o1"]["seq"] == 5
    fills = {row["fill_id"]: row for row in rows(store, schema.fills)}
    assert fills["f1"]["event_id"] == "e6" and fills["f1"]["price"] == 100.6
    assert sorted((f["order_id"], f["purpose"], f["fee"]) for f in fills.values()) == [
        ("o1", "entry", 0.52),
        ("o3", "take_profit", 0.27),
    ]
    assert one(store, schema.positions) == {
        "position_id": "p1",
        "worker": "w1",
        "symbol": "BTC/USD",
        "status": "closed",
        "qty": 0.0,
        "entry_ts": T0 + 7 * 60_000,
        "entry_price": 100.6,
        "stop_price": 101.0,
        "take_profit": 105.5,
        "entry_fee": 0.52,
        "risk_usd": 5.2,
        "exit_ts": T0 + 14 * 60_000,
        "exit_price": 105.5,
        "realized_pnl": 9.8,
        "fees": 0.79,
        "exit_reason": "take_profit",
        "updated_seq": 14,
    }
    trade = one(store, schema.trades)
    assert (trade["seq"], trade["net_pnl"], trade["r_multiple"], trade["exit_ts"]) == (14, 9.01, 1.73, T0 + 14 * 60_000)
    intent = one(store, schema.intents)
    assert (intent["status"], intent["score"], intent["vetoed"]) == ("filled", 0.7, False)
    assert intent["features"] == '{"atr":1.5,"rsi":55.0}'
    features = one(store, schema.features)
    assert (features["net_pnl"], features["r_multiple"], features["won"]) == (9.01, 1.73, True)
    assert one(store, schema.candles)["close"] == 100.5
    assert one(store, schema.equity)["equity"] == 10_009.01
    assert [row["seq"] for row in rows(store, schema.events)] == list(range(1, 18))
    status = store.projection.status()
    assert status["last_seq"] == "17" and status["last_event_type"] == "RuntimeStopped"
    assert (status["mode"], status["config_hash"], status["started_wall_ms"]) == ("paper", "cafe", "111")
    assert status["stopped_wall_ms"] == "222"


def test_project_when_an_event_is_stored_then_its_payload_is_the_record_minus_the_envelope(
    make_store: MakeStore,
) -> None:
    store = make_store()
    store.open()
    store.append(records([ev.OrderCancelled(**envelope(1), order_id="o9", reason="user")]))
    store.flush()

    row = one(store, schema.events)

    assert row["payload"] == '{"order_id":"o9","reason":"user"}'
    assert (row["type"], row["id"], row["ts_init"], row["causation_id"]) == ("OrderCancelled", "e1", T0 + 60_007, "")


def test_project_when_orders_fill_partially_are_denied_or_rejected_then_statuses_follow(make_store: MakeStore) -> None:
    store = make_store()
    store.open()
    events = [
        ev.IntentProposed(
            **envelope(1),
            intent_id="i7",
            side="buy",
            reference_price=10.0,
            stop_price=None,
            take_profit=None,
            confidence=0.5,
            reason="r",
        ),
        ev.IntentScored(**envelope(2), intent_id="i7", score=0.1, vetoed=True, features={"x": 1.0}),
        ev.IntentProposed(
            **envelope(3),
            intent_id="i8",
            side="buy",
            reference_price=10.0,
            stop_price=9.0,
            take_profit=12.0,
            confidence=0.5,
            reason="r",
        ),
        ev.OrderDenied(**envelope(4), intent_id="i8", rule="max_positions", reason="5 open"),
        ev.OrderSubmitted(
            **envelope(5), order_id="o1", side="buy", order_type="limit", purpose="entry", qty=3.0, limit_price=10.0
        ),
        ev.OrderFilled(
            **envelope(6),
            order_id="o1",
            fill_id="f1",
            side="buy",
            purpose="entry",
            qty=1.0,
            price=10.0,
            fee=0.01,
            fee_currency="USD",
            liquidity="maker",
            remaining_qty=2.0,
        ),
        ev.OrderRejected(**envelope(7), order_id="o-never-submitted", reason="insufficient funds"),
        ev.PositionOpened(
            **envelope(8),
            position_id="p1",
            qty=3.0,
            entry_price=10.0,
            stop_price=9.0,
            take_profit=None,
            entry_fee=0.03,
            risk_usd=3.0,
        ),
        ev.PositionReduced(**envelope(9), position_id="p1", qty_closed=1.0, price=11.0, fee=0.01, remaining_qty=2.0),
        ev.WorkerFaulted(**envelope(10), error_type="ZeroDivisionError", message="boom", consecutive=2),
        ev.WorkerStateChanged(**envelope(11), state="disabled", reason="3 faults"),
        ev.WorkerStateChanged(**envelope(12), state="enabled", reason="operator"),
        ev.RiskStateChanged(**envelope(13), previous="ACTIVE", state="HALTED", rule="max_drawdown", reason="-20%"),
    ]

    write_through(store, events, batch=len(events))

    intents = {row["intent_id"]: row for row in rows(store, schema.intents)}
    assert (intents["i7"]["status"], intents["i7"]["vetoed"]) == ("vetoed", True)
    assert (intents["i8"]["status"], intents["i8"]["deny_rule"], intents["i8"]["deny_reason"]) == (
        "denied",
        "max_positions",
        "5 open",
    )
    orders = {row["order_id"]: row for row in rows(store, schema.orders)}
    assert (orders["o1"]["status"], orders["o1"]["filled_qty"]) == ("partially_filled", 1.0)
    assert (orders["o-never-submitted"]["status"], orders["o-never-submitted"]["reason"]) == (
        "rejected",
        "insufficient funds",
    )
    position = one(store, schema.positions)
    assert (position["status"], position["qty"], position["fees"]) == ("open", 2.0, pytest.approx(0.04))
    assert one(store, schema.worker_faults)["consecutive"] == 2
    assert one(store, schema.worker_state) == {
        "worker": "w1",
        "state": "enabled",
        "reason": "operator",
        "updated_seq": 12,
    }
    assert one(store, schema.risk_state)["state"] == "HALTED"


def test_project_when_a_candle_is_journaled_twice_then_the_later_one_wins(make_store: MakeStore) -> None:
    store = make_store()
    store.open()
    first = ev.CandleClosed(**envelope(1), ts=T0, open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0)
    again = ev.CandleClosed(**envelope(2), ts=T0, open=1.0, high=2.0, low=0.5, close=1.75, volume=4.0)

    write_through(store, [first, again], batch=1)

    assert one(store, schema.candles)["close"] == 1.75


def test_rebuild_when_compared_with_incremental_projection_then_every_table_is_identical(
    make_store: MakeStore, every_type_events: list[Event]
) -> None:
    session = mini_session()
    tail = [sample_event(type(event), len(session) + i + 1) for i, event in enumerate(every_type_events)]
    events = session + tail
    store = make_store()
    store.open()
    write_through(store, events, batch=2)
    incremental = table_snapshot(store.projection.engine)

    rebuilt_count = store.rebuild()

    assert rebuilt_count == len(events)
    assert table_snapshot(store.projection.engine) == incremental
    assert all(incremental[name] for name in ("events", "orders", "fills", "positions", "trades", "features"))


def test_open_when_the_projection_is_behind_the_journal_then_it_catches_up(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = mini_session()
    store = make_store()
    store.open()
    write_through(store, events[:5], batch=5)
    store.close()
    # A crash between the journal write and the projection: the journal has records the database lacks.
    with Journal(tmp_path / "journal") as journal:
        journal.append(records(events[5:]))

    reopened = make_store()
    caught_up = reopened.open()

    assert caught_up == len(events) - 5
    assert reopened.projection.last_seq() == reopened.last_seq == len(events)
    assert one(reopened, schema.trades)["net_pnl"] == 9.01
    assert reopened.is_open


def test_flush_when_the_projection_fails_then_the_error_is_raised_and_the_next_flush_catches_up(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = mini_session()
    store = make_store()
    store.open()
    write_through(store, events[:4], batch=4)

    def broken(records: list[dict[str, Any]]) -> None:
        raise ProjectionError("database is locked")

    monkeypatch.setattr(store.projection, "project", broken)
    store.append(records(events[4:8]))
    with pytest.raises(ProjectionError):
        store.flush()
    monkeypatch.undo()
    assert [event.seq for event in store.read_events(after_seq=4)] == [5, 6, 7, 8]  # the journal has them

    write_through(store, events[8:], batch=len(events))

    assert [row["seq"] for row in rows(store, schema.events)] == list(range(1, len(events) + 1))


def test_open_when_the_database_comes_from_another_journal_then_it_is_rebuilt(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store(journal="journal_a")
    store.open()
    write_through(store, mini_session(), batch=10)
    store.close()

    other = make_store(journal="journal_b")  # same database, empty journal
    assert other.open() == 0

    assert rows(other, schema.events) == [] and rows(other, schema.orders) == []


def test_project_when_a_batch_is_replayed_then_it_is_ignored(tmp_path: Path) -> None:
    projection = Projection(f"sqlite:///{tmp_path / 'p.db'}")
    batch = records(mini_session())
    projection.project(batch)
    before = table_snapshot(projection.engine)

    projection.project(batch)

    assert table_snapshot(projection.engine) == before
    projection.close()


def test_open_when_the_store_uses_sqlite_then_wal_mode_is_on_and_the_file_is_under_base_dir(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store(database="nested/dir/desk.db")
    store.open()

    with sqlite3.connect(tmp_path / "nested" / "dir" / "desk.db") as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()

    assert mode == "wal"


def test_commands_when_submitted_and_marked_then_pending_lists_only_the_open_ones(make_store: MakeStore) -> None:
    store = make_store()
    first = store.submit_command("halt", {}, wall_ms=1_000)  # the inbox works before open()
    second = store.submit_command("pause_worker", {"worker": "w1"}, wall_ms=2_000)
    store.open()

    store.mark_command(first, "applied", "", acked_seq=None)

    pending = store.pending_commands()
    assert [(row.command_id, row.command, row.payload, row.status) for row in pending] == [
        (second, "pause_worker", {"worker": "w1"}, "pending")
    ]
    with pytest.raises(ValueError, match="applied or rejected"):
        store.mark_command(second, "done", "", None)
    with pytest.raises(ProjectionError, match="no command #999"):
        store.mark_command(999, "applied", "", None)


def test_rebuild_when_commands_are_in_the_inbox_then_they_survive_with_their_journaled_outcome(
    make_store: MakeStore,
) -> None:
    store = make_store()
    store.open()
    applied_id = store.submit_command("halt", {"why": "test"}, wall_ms=5)
    pending_id = store.submit_command("resume", {}, wall_ms=6)
    applied = ev.CommandApplied(**envelope(1), command_id=applied_id, command="halt", status="applied", detail="ok")
    store.append(records([applied]))
    store.flush()
    assert [row.command_id for row in store.pending_commands()] == [pending_id]

    store.rebuild()

    inbox = {row["command_id"]: row for row in rows(store, schema.commands)}
    assert (inbox[applied_id]["status"], inbox[applied_id]["detail"], inbox[applied_id]["acked_seq"]) == (
        "applied",
        "ok",
        1,
    )
    assert inbox[pending_id]["status"] == "pending"
    assert [row.command_id for row in store.pending_commands()] == [pending_id]


def test_rebuild_when_the_store_was_never_opened_then_it_projects_the_whole_journal(
    make_store: MakeStore, tmp_path: Path
) -> None:
    with Journal(tmp_path / "journal") as journal:
        journal.append(records(mini_session()))
    store = make_store()

    assert store.rebuild() == 17
    assert one(store, schema.trades)["position_id"] == "p1"


def test_append_when_a_seq_does_not_follow_then_journal_error_and_the_buffer_is_unchanged(
    make_store: MakeStore,
) -> None:
    store = make_store()
    store.open()
    events = mini_session()
    store.append(records(events[:2]))

    with pytest.raises(JournalError):
        store.append(records([events[3], events[2]]))

    assert store.last_seq == 2
    store.flush()
    assert [event.seq for event in store.read_events()] == [1, 2]


def test_flush_when_a_projection_lag_is_set_then_records_are_journaled_now_and_projected_by_close(
    tmp_path: Path,
) -> None:
    config = StoreConfig(journal_dir="journal", database_url="sqlite:///desk.db")
    store = EventStore(config, tmp_path, projection_lag_s=3600.0)
    store.open()
    events = mini_session()
    write_through(store, events[:3], batch=3)  # the first flush projects: nothing was projected yet
    write_through(store, events[3:], batch=2)

    assert [event.seq for event in store.read_events()] == list(range(1, 18))
    assert store.projection.last_seq() == 3

    store.close()

    reopened = EventStore(config, tmp_path)
    assert reopened.open() == 0  # nothing left to catch up: close() projected the rest
    assert one(reopened, schema.trades)["net_pnl"] == 9.01
    reopened.close()
