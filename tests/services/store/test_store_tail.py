"""`tail`: one readable line per record, filters, last-n, and following a journal being written."""

from __future__ import annotations

import io
from pathlib import Path

from desk.core import events as ev
from desk.core.events import Event, event_to_record
from desk.services.store.journal import Journal
from desk.services.store.tail import JournalFollower, format_record, tail
from tests.services.store.store_samples import T0, envelope, mini_session, records


def candle(seq: int, symbol: str = "BTC/USD", minute: int | None = None) -> ev.CandleClosed:
    return ev.CandleClosed(
        **envelope(seq, minute, worker="", symbol=symbol),
        ts=T0,
        open=43000.0,
        high=43300.5,
        low=42950.0,
        close=43210.5,
        volume=12.25,
    )


def write(directory: Path, events: list[Event]) -> None:
    with Journal(directory) as journal:
        journal.append(records(events))


def test_format_record_when_an_order_fills_then_side_qty_price_and_fee_are_shown() -> None:
    fill = ev.OrderFilled(
        **envelope(5, minute=5),
        order_id="o1",
        fill_id="f1",
        side="buy",
        purpose="entry",
        qty=0.0123,
        price=43210.5,
        fee=1.3812,
        fee_currency="USD",
        liquidity="taker",
        remaining_qty=0.0,
    )

    line = format_record(event_to_record(fill))

    assert line.startswith("2026-01-01 00:05  OrderFilled ")
    assert "  w1  " in line and "BTC/USD" in line
    assert "buy 0.0123 @ 43210.5 fee 1.38" in line


def test_format_record_when_a_position_closes_then_net_pnl_r_and_exit_reason_are_shown() -> None:
    closed = next(event for event in mini_session() if isinstance(event, ev.PositionClosed))

    line = format_record(event_to_record(closed))

    assert "net +9.01 (+1.73R) take_profit" in line


def test_format_record_when_a_candle_closes_then_ohlcv_are_shown_compactly() -> None:
    line = format_record(event_to_record(candle(1)))

    assert "CandleClosed" in line and "o 43000 h 43300.5 l 42950 c 43210.5 v 12.25" in line


def test_format_record_when_every_type_is_formatted_then_each_gives_one_line(every_type_events: list[Event]) -> None:
    for event in every_type_events:
        line = format_record(event_to_record(event))
        assert "\n" not in line and event.type_name in line


def test_format_record_when_the_type_is_unknown_then_fields_print_as_key_values() -> None:
    line = format_record({"seq": 1, "type": "FutureThing", "ts_event": T0, "worker": "w", "symbol": "", "x": 1.5})

    assert "FutureThing" in line and line.endswith("x=1.5")


def test_tail_when_filters_and_last_n_are_given_then_only_the_last_matching_records_print(tmp_path: Path) -> None:
    write(tmp_path, [candle(seq, "BTC/USD" if seq % 2 else "ETH/USD") for seq in range(1, 11)])
    out = io.StringIO()

    printed = tail(Journal(tmp_path), types=["CandleClosed"], symbols=["ETH/USD"], last_n=2, out=out)

    lines = out.getvalue().splitlines()
    assert printed == 2 and len(lines) == 2
    assert all("ETH/USD" in line for line in lines)
    assert lines[0].startswith("2026-01-01 00:08") and lines[1].startswith("2026-01-01 00:10")


def test_tail_when_filtering_by_worker_then_other_workers_are_hidden(tmp_path: Path) -> None:
    write(tmp_path, mini_session())
    out = io.StringIO()

    tail(Journal(tmp_path), workers=["w1"], types=["OrderFilled", "RuntimeStarted"], last_n=50, out=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all("OrderFilled" in line for line in lines)


def test_tail_when_following_then_new_lines_and_a_new_daily_file_are_printed(tmp_path: Path) -> None:
    write(tmp_path, [candle(1), candle(2)])
    writer = Journal(tmp_path)
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            writer.append(records([candle(3), candle(4, minute=24 * 60 + 1)]))  # the second lands on Jan 2
        if calls == 2:
            writer.append(records([candle(5, "ETH/USD", minute=24 * 60 + 2)]))
        return calls >= 4

    out = io.StringIO()
    try:
        printed = tail(Journal(tmp_path), follow=True, last_n=1, out=out, poll_s=0.001, stop=stop)
    finally:
        writer.close()

    lines = out.getvalue().splitlines()
    assert printed == 4
    assert [line[:16] for line in lines] == [
        "2026-01-01 00:02",
        "2026-01-01 00:03",
        "2026-01-02 00:01",
        "2026-01-02 00:02",
    ]
    assert "ETH/USD" in lines[-1]


def test_poll_when_a_line_is_half_written_then_it_waits_for_the_newline(tmp_path: Path) -> None:
    write(tmp_path, [candle(1)])
    path = Journal(tmp_path).files()[0]
    follower = JournalFollower(Journal(tmp_path))
    assert [record["seq"] for record in follower.poll()] == [1]
    line = Journal(tmp_path).files()[0].read_text()  # one complete line
    second = line.replace('"seq":1', '"seq":2').replace('"id":"e1"', '"id":"e2"')

    with path.open("a") as handle:
        handle.write(second[:20])
    assert follower.poll() == []
    with path.open("a") as handle:
        handle.write(second[20:])

    assert [record["seq"] for record in follower.poll()] == [2]


def test_poll_when_the_writer_truncates_a_torn_line_then_following_resumes_cleanly(tmp_path: Path) -> None:
    write(tmp_path, [candle(1)])
    path = Journal(tmp_path).files()[0]
    follower = JournalFollower(Journal(tmp_path))
    follower.poll()
    with path.open("a") as handle:
        handle.write('{"seq":2,"torn')  # the daemon crashed mid-write
    assert follower.poll() == []

    write(tmp_path, [candle(2), candle(3)])  # the restarted daemon truncates the torn line, then appends

    assert [record["seq"] for record in follower.poll()] == [2, 3]
