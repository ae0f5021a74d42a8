"""The projection in its own process: same tables as in process, bounded waits, failures raised at close."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select

from desk.core import events as ev
from desk.core.errors import JournalError
from desk.core.events import EVENT_TYPES, Event
from desk.services.store import schema
from desk.services.store.journal import Journal
from desk.services.store.projection import ProjectionError
from desk.services.store.store import EventStore
from tests.services.store.store_samples import DAY_MS, MINUTE, T0, envelope, mini_session, records, sample_event

MakeStore = Callable[..., EventStore]
ROOT = Path(__file__).resolve().parents[3]
# Values orjson must carry through the pipe bit for bit (a float's sign, its last digit).
AWKWARD_FLOATS = [0.1 + 0.2, 1e-300, 123_456_789.123_456_78, -0.0, 5e-324, 1.7976931348623157e308, 2.0 / 3.0]


def every_table(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the schema (the commands inbox and heartbeat too) as sorted row tuples."""
    with engine.connect() as connection:
        return {
            table.name: sorted(tuple(row) for row in connection.execute(select(table)))
            for table in schema.metadata.sorted_tables
        }


def chunk(seq: int, first_minute: int, equity: list[float]) -> ev.EquitySeries:
    """A backtest's EquitySeries of one mark a minute from `first_minute`."""
    return ev.EquitySeries(
        **envelope(seq, first_minute + len(equity) - 1),
        start_ts=T0 + first_minute * MINUTE,
        step_ms=MINUTE,
        equity=equity,
        cash=[value - 250.5 for value in equity],
        positions_value=[250.5] * len(equity),
        high_water_mark=np.maximum.accumulate(equity).tolist(),
        open_positions=[i % 4 for i in range(len(equity))],
    )


def realistic_events() -> list[Event]:
    """A trade's life, one event of every type, per-minute marks and day-long EquitySeries over midnight."""
    events: list[Event] = mini_session()
    events += [sample_event(cls, len(events) + i + 1) for i, cls in enumerate(EVENT_TYPES.values())]
    rng = np.random.default_rng(11)
    minute = DAY_MS // MINUTE - 600  # the first chunk runs past midnight into the next day's file
    for _ in range(3):
        equity = (10_000.0 + np.cumsum(rng.normal(0.0, 2.5, 1_440))).tolist()
        equity[:7] = [value + 10_000.0 for value in AWKWARD_FLOATS]
        seq = len(events) + 1
        events.append(
            ev.EquitySampled(
                **envelope(seq, minute + 10),  # a per-minute row the chunk after it covers
                equity=10_001.0,
                cash=9_000.0,
                positions_value=1_001.0,
                high_water_mark=10_002.0,
                drawdown_pct=0.0001,
                open_positions=1,
            )
        )
        events.append(chunk(seq + 1, minute, equity))
        events.append(
            ev.CandleClosed(
                **envelope(seq + 2, minute + 1_440), ts=T0 + minute * MINUTE, open=1.0, high=2.0, low=0.5, close=1.5,
                volume=AWKWARD_FLOATS[4],
            )
        )  # fmt: skip
        minute += 1_440
    return events


def write_in_batches(store: EventStore, events: list[Event], sizes: tuple[int, ...] = (1, 3, 7, 2, 11)) -> None:
    """Append and flush `events` in batches of varying size, as a bus publishes them."""
    start = 0
    index = 0
    while start < len(events):
        size = sizes[index % len(sizes)]
        store.append(records(events[start : start + size]))
        store.flush()
        start += size
        index += 1


def in_process_tables(make_store: MakeStore, events: list[Event], name: str) -> dict[str, list[tuple[Any, ...]]]:
    """The tables the in-process projection makes of `events`, in a database and journal of their own."""
    store = make_store(database=f"{name}.db", journal=f"{name}-journal")
    store.open()
    write_in_batches(store, events, sizes=(5,))
    store.close()
    return every_table(store.projection.engine)


def journaled_seqs(tmp_path: Path, journal: str = "journal") -> list[int]:
    return [record["seq"] for record in Journal(tmp_path / journal).read()]


def is_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_until_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        time.sleep(0.05)
    return is_gone(pid)


# --- same result -----------------------------------------------------------------------------


def test_close_when_a_realistic_mix_is_projected_in_a_process_then_every_table_equals_the_in_process_projection(
    make_store: MakeStore,
) -> None:
    events = realistic_events()
    expected = in_process_tables(make_store, events, "inline")
    store = make_store(projection_process=True, projection_lag_s=2.0)  # the backtest's lag: a few big batches
    store.open()

    write_in_batches(store, events)
    store.close()

    assert every_table(store.projection.engine) == expected
    assert len(expected["events"]) == len(events) and len(expected["equity_series"]) == 4  # 3 + the sample
    assert expected["equity"] and expected["trades"] and expected["candles"]


def test_open_when_the_journal_holds_records_the_database_lacks_then_the_process_projects_them_first(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = realistic_events()
    expected = in_process_tables(make_store, events, "inline")
    with Journal(tmp_path / "journal") as journal:  # a crash after journaling, before projecting
        journal.append(records(events[:20]))
    store = make_store(projection_process=True)

    assert store.open() == 0  # the child does the catching up
    write_in_batches(store, events[20:])
    store.close()

    assert every_table(store.projection.engine) == expected


def test_open_when_the_database_comes_from_another_journal_then_the_process_rebuilds_it(
    make_store: MakeStore,
) -> None:
    events = mini_session()
    expected = in_process_tables(make_store, events[:3], "inline")
    first = make_store(journal="journal_a")
    first.open()
    write_in_batches(first, events)
    first.close()
    other = make_store(journal="journal_b", projection_process=True)  # same database, another journal
    other.open()

    write_in_batches(other, events[:3])
    other.close()

    assert every_table(other.projection.engine) == expected


def test_flush_when_the_journal_refuses_a_batch_then_the_process_catches_up_from_the_journal(
    make_store: MakeStore,
) -> None:
    events = mini_session()
    expected = in_process_tables(make_store, events, "inline")
    store = make_store(projection_process=True, projection_lag_s=3_600.0)
    store.open()
    write_in_batches(store, events[:6])
    refused = records([events[6]])
    refused[0]["payload_extra"] = float("nan")  # the journal refuses non-finite numbers

    store.append(refused)
    with pytest.raises(JournalError, match="nan"):
        store.flush()
    write_in_batches(store, events[6:])
    store.close()

    assert every_table(store.projection.engine) == expected


def test_rebuild_when_a_projection_process_runs_then_the_tables_equal_the_in_process_projection(
    make_store: MakeStore,
) -> None:
    events = mini_session()
    expected = in_process_tables(make_store, events, "inline")
    store = make_store(projection_process=True)
    store.open()
    write_in_batches(store, events[:10])

    assert store.rebuild() == 10
    write_in_batches(store, events[10:])
    store.close()

    assert every_table(store.projection.engine) == expected


# --- waiting -----------------------------------------------------------------------------------


def test_close_when_nothing_was_sent_yet_then_it_waits_until_everything_is_projected_and_the_process_exited(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = realistic_events()
    store = make_store(projection_process=True, projection_lag_s=3_600.0)  # only close sends
    store.open()
    pid = store.projection_process_pid
    assert pid is not None
    write_in_batches(store, events)

    store.close()

    assert is_gone(pid) and store.projection_process_pid is None and not store.is_open
    status = store.projection.status()
    assert status["last_seq"] == str(len(events)) == str(journaled_seqs(tmp_path)[-1])


def test_wait_projected_when_batches_are_journaled_then_the_open_store_reads_them_all(
    make_store: MakeStore,
) -> None:
    events = mini_session()
    store = make_store(projection_process=True, projection_lag_s=3_600.0)
    store.open()
    write_in_batches(store, events[:9])

    assert store.wait_projected() == 9
    assert store.projection.last_seq() == 9
    with store.projection.engine.connect() as connection:
        assert connection.execute(select(schema.events.c.seq)).scalars().all() == list(range(1, 10))
    write_in_batches(store, events[9:])
    assert store.wait_projected() == len(events)


# --- failures -----------------------------------------------------------------------------------


def test_close_when_the_process_was_killed_then_it_raises_the_rebuild_hint_and_the_journal_is_complete(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = realistic_events()
    store = make_store(projection_process=True)  # no lag: every flush sends, so flushes meet the dead child
    store.open()
    write_in_batches(store, events[:10])
    store.wait_projected()
    pid = store.projection_process_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_until_gone(pid, 10.0)

    write_in_batches(store, events[10:])  # the journal goes on: flushes do not raise
    with pytest.raises(ProjectionError) as raised:
        store.close()

    message = str(raised.value)
    assert "projection failed" in message and "signal 9" in message and "rebuild-db" in message
    assert str(tmp_path / "journal") in message
    assert journaled_seqs(tmp_path) == list(range(1, len(events) + 1))
    assert not store.is_open
    rebuilder = make_store()
    assert rebuilder.rebuild() == len(events)
    assert every_table(rebuilder.projection.engine) == in_process_tables(make_store, events, "inline")


def test_close_when_the_projection_rejects_a_record_then_it_raises_naming_the_record(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = mini_session()
    bad = records([chunk(len(events) + 1, 100, [10_000.0, 10_001.0, 10_002.0])])[0]
    bad["cash"][1] = None  # journaled as it is (a null is no NaN), refused by the projection
    store = make_store(projection_process=True)
    store.open()
    write_in_batches(store, events)
    store.append([bad])
    store.flush()  # the child fails on it; this process only journals

    store.append(records([sample_event(ev.OrderCancelled, len(events) + 2)]))
    store.flush()
    with pytest.raises(ProjectionError, match=r"seq 18 \(EquitySeries\): malformed record.*cash.*rebuild-db"):
        store.close()

    assert journaled_seqs(tmp_path) == list(range(1, len(events) + 3))


def test_wait_projected_when_the_process_stops_answering_then_it_gives_up_within_the_timeout(
    make_store: MakeStore,
) -> None:
    store = make_store(projection_process=True, projection_timeout_s=1.0)
    store.open()
    write_in_batches(store, mini_session())
    store.wait_projected()
    pid = store.projection_process_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive but frozen: a wait without a bound would hang here

    started = time.monotonic()
    with pytest.raises(ProjectionError, match=r"did not answer within 1 s; killed.*rebuild-db"):
        store.wait_projected()
    with pytest.raises(ProjectionError, match="did not answer"):
        store.close()

    assert time.monotonic() - started < 5.0
    assert wait_until_gone(pid, 10.0)


def test_projection_process_when_its_writer_is_killed_then_it_exits_too(tmp_path: Path) -> None:
    writer_script = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from desk.config import StoreConfig
from desk.services.store.store import EventStore
store = EventStore(StoreConfig(journal_dir="journal", database_url="sqlite:///desk.db"), Path({str(tmp_path)!r}),
                   projection_process=True)
store.open()
store.wait_projected()
print(store.projection_process_pid, flush=True)
time.sleep(60)
"""
    writer = subprocess.Popen([sys.executable, "-c", writer_script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        child = int(writer.stdout.readline())
        assert not is_gone(child)

        writer.kill()  # SIGKILL: no close(), no atexit
        writer.wait(10)

        assert wait_until_gone(child, 10.0)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(10)


def test_store_when_no_option_is_given_then_it_projects_in_process(make_store: MakeStore) -> None:
    store = make_store()
    store.open()

    write_in_batches(store, mini_session()[:4])

    assert store.projection_process_pid is None
    assert store.projection.last_seq() == 4  # projected by the flush itself, no waiting
