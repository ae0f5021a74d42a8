"""Equity marks in two tables: the daemon's per-minute rows and a backtest's EquitySeries chunks.

Every reader must see one series in time order, as if each mark had been
upserted by its ts in seq order (the newest mark of a minute wins). The
reference model below does exactly that, one mark at a time, and the tests
compare what `StoreReader` answers with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from desk.core import events as ev
from desk.core.errors import JournalError
from desk.core.events import Event
from desk.services.store import schema
from desk.services.store.journal import Journal
from desk.services.store.projection import ProjectionError
from desk.services.store.queries import StoreReader
from desk.services.store.store import EventStore
from tests.services.store.store_samples import DAY_MS, MINUTE, T0, envelope, records, table_snapshot

MakeStore = Callable[..., EventStore]
Mark = tuple[int, int, float, float, float, float, float, int]  # seq, ts, equity, cash, pv, high, dd, open


def sampled(seq: int, minute: int, equity: float, high: float) -> ev.EquitySampled:
    """A daemon's per-minute mark; its drawdown is computed the way the risk engine does."""
    return ev.EquitySampled(
        **envelope(seq, minute),
        equity=equity,
        cash=equity - 50.0,
        positions_value=50.0,
        high_water_mark=high,
        drawdown_pct=1.0 - equity / high if high > 0 else 0.0,
        open_positions=1,
    )


def series(seq: int, first_minute: int, equities: list[float], high: float | None = None) -> ev.EquitySeries:
    """A backtest's chunk of marks, one a minute from `first_minute`, stamped at its last mark."""
    highs = [high if high is not None else max(equities[: i + 1]) for i in range(len(equities))]
    return ev.EquitySeries(
        **envelope(seq, first_minute + len(equities) - 1),
        start_ts=T0 + first_minute * MINUTE,
        step_ms=MINUTE,
        equity=list(equities),
        cash=[e - 25.0 for e in equities],
        positions_value=[25.0] * len(equities),
        high_water_mark=highs,
        open_positions=[i % 3 for i in range(len(equities))],
    )


def upserted_marks(events: list[Event]) -> list[Mark]:
    """The reference: every mark upserted by ts in seq order, read back in time order."""
    by_ts: dict[int, Mark] = {}
    for event in events:
        if isinstance(event, ev.EquitySampled):
            by_ts[event.ts_event] = (
                event.seq,
                event.ts_event,
                event.equity,
                event.cash,
                event.positions_value,
                event.high_water_mark,
                event.drawdown_pct,
                event.open_positions,
            )
        elif isinstance(event, ev.EquitySeries):
            columns = zip(
                event.equity,
                event.cash,
                event.positions_value,
                event.high_water_mark,
                event.open_positions,
                strict=True,
            )
            for i, (equity, cash, pv, high, count) in enumerate(columns):
                ts = event.start_ts + i * event.step_ms
                by_ts[ts] = (event.seq, ts, equity, cash, pv, high, 1.0 - equity / high if high > 0 else 0.0, count)
    return [by_ts[ts] for ts in sorted(by_ts)]


def write(store: EventStore, events: list[Event], batch: int) -> None:
    for start in range(0, len(events), batch):
        store.append(records(events[start : start + batch]))
        store.flush()


def reader_of(tmp_path: Path) -> StoreReader:
    return StoreReader(f"sqlite:///{tmp_path / 'desk.db'}", tmp_path / "journal")


def curve_marks(reader: StoreReader, **kwargs: Any) -> list[Mark]:
    """The curve at full resolution: one mark a bucket, so a bucket's low, high and worst are that mark's."""
    curve = reader.equity_curve(max_points=100_000, **kwargs)
    assert (curve["equity_min"] == curve["equity"]).all() and (curve["equity_max"] == curve["equity"]).all()
    assert (curve["drawdown_max"] == curve["drawdown_pct"]).all()
    columns = ["seq", "ts", "equity", "cash", "positions_value", "high_water_mark", "drawdown_pct", "open_positions"]
    return [tuple(row) for row in curve[columns].itertuples(index=False, name=None)]


def mixed_events() -> list[Event]:
    """Rows, chunks, and both overlapping: a chunk over older rows, a row over a chunk, chunk over chunk."""
    return [
        *(sampled(seq, seq - 1, 10_000.0 + seq, 10_010.0) for seq in range(1, 6)),  # minutes 0-4
        series(6, 3, [9_990.0, 9_995.0, 9_000.0, 10_015.0]),  # minutes 3-6: replaces rows 3 and 4
        sampled(7, 5, 10_030.0, 10_030.0),  # minute 5: replaces the chunk's mark, the lowest of all
        series(8, 9, [10_040.0, 10_035.0, 10_050.0]),  # minutes 9-11, a gap before it
        series(9, 10, [10_060.0], high=10_060.0),  # minute 10 again: the newer chunk wins
        sampled(10, 12, 10_055.0, 10_060.0),
    ]


# --- reading -----------------------------------------------------------------------------------


def test_equity_curve_when_store_holds_rows_and_chunks_then_it_is_every_mark_in_time_order(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = [*(sampled(seq, seq - 1, 10_000.0 + seq, 10_010.0) for seq in range(1, 4)), series(4, 3, [1.0, 2.0])]
    events += [series(5, 10, [9_000.0, 9_100.0, 9_050.0]), sampled(6, 20, 9_500.0, 10_010.0)]
    store = make_store()
    store.open()
    write(store, events, batch=2)
    store.close()

    marks = curve_marks(reader_of(tmp_path))

    assert marks == upserted_marks(events)
    assert [mark[1] for mark in marks] == [T0 + m * MINUTE for m in (0, 1, 2, 3, 4, 10, 11, 12, 20)]


def test_equity_curve_when_marks_of_one_minute_overlap_then_the_newest_seq_wins(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = mixed_events()
    store = make_store()
    store.open()
    write(store, events, batch=3)
    store.close()
    reader = reader_of(tmp_path)

    marks = curve_marks(reader)

    assert marks == upserted_marks(events)
    assert [(mark[1] - T0) // MINUTE for mark in marks if mark[0] == 6] == [3, 4, 6]
    assert [mark[2] for mark in marks if (mark[1] - T0) // MINUTE == 10] == [10_060.0]
    assert curve_marks(reader, start_ms=T0 + 4 * MINUTE, end_ms=T0 + 10 * MINUTE) == [
        mark for mark in upserted_marks(events) if T0 + 4 * MINUTE <= mark[1] <= T0 + 10 * MINUTE
    ]


@pytest.mark.parametrize("max_points", [2, 3, 4, 7])
def test_equity_curve_when_downsampled_then_each_bucket_is_its_last_mark_with_low_high_and_worst(
    make_store: MakeStore, tmp_path: Path, max_points: int
) -> None:
    events = mixed_events()
    store = make_store()
    store.open()
    write(store, events, batch=len(events))
    store.close()
    expected = upserted_marks(events)
    first_ts, last_ts = expected[0][1], expected[-1][1]
    width = max(1, math.ceil((last_ts - first_ts + 1) / (max_points - 1)))
    buckets: dict[int, list[Mark]] = {}
    for mark in expected:
        buckets.setdefault((mark[1] - first_ts) // width, []).append(mark)
    wanted = [(*expected[0], expected[0][2], expected[0][2], expected[0][6])]
    for bucket in sorted(buckets):
        inside = buckets[bucket]
        summary = (*inside[-1], min(m[2] for m in inside), max(m[2] for m in inside), max(m[6] for m in inside))
        if summary[1] != wanted[0][1]:
            wanted.append(summary)

    curve = reader_of(tmp_path).equity_curve(max_points=max_points)

    got = [tuple(row) for row in curve.drop(columns=["time"]).itertuples(index=False, name=None)]
    assert got == wanted
    assert len(curve) <= max_points


def test_summary_and_period_stats_when_the_newest_marks_are_in_a_chunk_then_they_read_the_chunk(
    make_store: MakeStore, tmp_path: Path
) -> None:
    # Day one ends on two rows; day two is a chunk of three marks, the newest marks of the store.
    last_minute_of_day_one = DAY_MS // MINUTE - 1
    events = [
        sampled(1, last_minute_of_day_one - 1, 10_100.0, 10_100.0),
        sampled(2, last_minute_of_day_one, 10_000.0, 10_100.0),
        series(3, last_minute_of_day_one + 1, [10_050.0, 9_900.0, 10_020.0], high=10_100.0),
    ]
    store = make_store()
    store.open()
    write(store, events, batch=1)
    store.close()
    reader = reader_of(tmp_path)

    summary = reader.summary()
    day_two = reader.period_stats(T0 + DAY_MS, T0 + 2 * DAY_MS - 1)

    assert summary is not None
    assert (summary.as_of_ms, summary.equity, summary.cash) == (T0 + DAY_MS + 2 * MINUTE, 10_020.0, 9_995.0)
    assert (summary.high_water_mark, summary.open_positions) == (10_100.0, 2)
    assert summary.drawdown_pct == pytest.approx(80 / 10_100)
    assert summary.today_pnl == pytest.approx(20.0)  # since the last mark of day one, a row
    assert (day_two.start_equity, day_two.end_equity, day_two.change) == (10_050.0, 10_020.0, -30.0)
    assert day_two.max_drawdown_pct == pytest.approx(200 / 10_100)
    assert reader.equity_bounds() == (T0 + (last_minute_of_day_one - 1) * MINUTE, T0 + DAY_MS + 2 * MINUTE)
    assert reader.period_stats(T0 + DAY_MS + 30_000, T0 + DAY_MS + 50_000).start_equity is None  # between marks


def test_readers_when_the_store_holds_only_chunks_then_they_agree_with_the_marks(
    make_store: MakeStore, tmp_path: Path
) -> None:
    equities = [10_000.0 + 7.0 * math.sin(i / 5.0) for i in range(300)]
    events = [series(1, 0, equities[:120]), series(2, 120, equities[120:240]), series(3, 240, equities[240:])]
    store = make_store()
    store.open()
    write(store, events, batch=1)
    store.close()
    reader = reader_of(tmp_path)
    expected = upserted_marks(events)

    stats = reader.period_stats()
    drawdown = reader.drawdown(max_points=50)

    assert curve_marks(reader) == expected
    assert (stats.start_equity, stats.end_equity) == (expected[0][2], expected[-1][2])
    assert stats.max_drawdown_pct == max(mark[6] for mark in expected)
    assert drawdown["drawdown_pct"].max() == stats.max_drawdown_pct and len(drawdown) <= 50


# --- projecting --------------------------------------------------------------------------------


def test_project_when_an_equity_series_is_written_then_one_row_per_chunk_and_no_per_minute_rows(
    make_store: MakeStore,
) -> None:
    store = make_store()
    store.open()

    write(store, [series(1, 0, [10_000.0 + i for i in range(1440)]), series(2, 1440, [9_000.0, 9_001.0])], batch=2)

    with store.projection.engine.connect() as connection:
        chunks = connection.execute(select(schema.equity_series)).all()
        per_minute = connection.execute(select(schema.equity)).all()
        payload = connection.execute(select(schema.events.c.payload).where(schema.events.c.seq == 2)).scalar_one()
    assert [(c.seq, c.first_ts, c.last_ts, c.step_ms, c.marks) for c in chunks] == [
        (1, T0, T0 + 1439 * MINUTE, MINUTE, 1440),
        (2, T0 + 1440 * MINUTE, T0 + 1441 * MINUTE, MINUTE, 2),
    ]
    assert len(chunks[0].equity) == 1440 * 8 and per_minute == []
    # The mark columns live in equity_series (same seq), not a second time in the payload.
    assert payload == f'{{"start_ts":{T0 + 1440 * MINUTE},"step_ms":{MINUTE}}}'


def test_rebuild_when_the_store_holds_rows_and_chunks_then_every_table_is_identical(
    make_store: MakeStore, tmp_path: Path
) -> None:
    events = mixed_events()
    store = make_store()
    store.open()
    write(store, events, batch=1)
    incremental = table_snapshot(store.projection.engine)

    assert store.rebuild() == len(events)  # one batch: different grouping, same tables

    assert table_snapshot(store.projection.engine) == incremental
    assert incremental["equity_series"] and incremental["equity"]
    store.close()
    assert curve_marks(reader_of(tmp_path)) == upserted_marks(events)


def test_project_when_an_equity_series_column_holds_a_null_then_the_projection_refuses_it_naming_the_column(
    make_store: MakeStore, tmp_path: Path
) -> None:
    bad = records([series(1, 0, [10_000.0, 10_001.0, 10_002.0])])[0]
    bad["cash"][1] = None  # only a hand-edited journal can hold this: the writer refuses NaN
    with Journal(tmp_path / "journal") as journal:
        journal.append([bad])
    store = make_store()

    with pytest.raises(ProjectionError, match=r"seq 1 \(EquitySeries\): malformed record.*cash"):
        store.open()


def test_append_when_an_equity_series_column_holds_a_non_finite_number_then_journal_error_names_the_field(
    make_store: MakeStore,
) -> None:
    store = make_store()
    store.open()
    marks = [10_000.0] * 1440
    marks[700] = math.inf
    store.append(records([series(1, 0, [10_000.0] * 1440, high=10_000.0)]))
    store.flush()
    bad = records([series(2, 1440, [10_000.0] * 1440, high=10_000.0)])[0]
    bad["high_water_mark"] = marks

    store.append([bad])
    with pytest.raises(
        JournalError, match=r"seq 2 \(EquitySeries\) cannot be journaled: high_water_mark\[700\] is inf"
    ):
        store.flush()

    assert [event.seq for event in store.read_events()] == [1]
