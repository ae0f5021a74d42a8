"""The journal: daily JSONL files, torn-tail recovery, corruption and duplicate detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desk.core.errors import JournalError
from desk.core.events import EVENT_TYPES, CandleClosed, Event, event_from_record
from desk.services.store.journal import Journal
from tests.services.store.store_samples import DAY_MS, T0, envelope, records


def candle(seq: int, minute: int | None = None) -> CandleClosed:
    return CandleClosed(**envelope(seq, minute), ts=T0, open=1.0, high=2.0, low=0.5, close=1.5, volume=3.0)


def write(directory: Path, events: list[Event]) -> None:
    with Journal(directory) as journal:
        journal.append(records(events))


def test_read_when_every_event_type_is_journaled_then_each_round_trips_to_an_equal_event(
    tmp_path: Path, every_type_events: list[Event]
) -> None:
    write(tmp_path, every_type_events)

    read_back = [event_from_record(record) for record in Journal(tmp_path).read()]

    assert read_back == every_type_events
    assert {type(event) for event in read_back} == set(EVENT_TYPES.values())


def test_append_when_a_batch_spans_midnight_then_each_record_lands_in_its_utc_day_file(tmp_path: Path) -> None:
    last_minute_of_day = 24 * 60 - 1
    write(
        tmp_path, [candle(1, last_minute_of_day - 1), candle(2, last_minute_of_day), candle(3, last_minute_of_day + 1)]
    )

    files = Journal(tmp_path).files()

    assert [path.name for path in files] == ["2026-01-01.jsonl", "2026-01-02.jsonl"]
    assert [json.loads(line)["seq"] for line in files[0].read_text().splitlines()] == [1, 2]
    assert [json.loads(line)["seq"] for line in files[1].read_text().splitlines()] == [3]


def test_append_when_written_then_lines_are_compact_json(tmp_path: Path) -> None:
    write(tmp_path, [candle(1)])

    line = Journal(tmp_path).files()[0].read_text()

    assert line.endswith("}\n") and ": " not in line and ", " not in line


def test_append_when_the_clock_went_back_then_records_stay_in_the_newest_file_in_seq_order(tmp_path: Path) -> None:
    write(tmp_path, [candle(1, minute=2 * 24 * 60)])
    write(tmp_path, [candle(2, minute=5)])  # a second simulated run starting at T0 again

    journal = Journal(tmp_path)

    assert [path.name for path in journal.files()] == ["2026-01-03.jsonl"]
    assert [record["seq"] for record in journal.read()] == [1, 2]


def test_read_when_after_seq_is_given_then_only_later_records_are_yielded(tmp_path: Path) -> None:
    write(tmp_path, [candle(seq, minute=seq * 600) for seq in range(1, 11)])  # 10 hours apart: several files

    journal = Journal(tmp_path)

    assert len(journal.files()) > 1
    assert [record["seq"] for record in journal.read(after_seq=7)] == [8, 9, 10]
    assert list(journal.read(after_seq=10)) == []


def test_read_when_the_last_line_has_no_newline_then_it_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, [candle(1), candle(2)])
    path = Journal(tmp_path).files()[-1]
    with path.open("a") as handle:
        handle.write('{"seq":3,"type":"CandleCl')

    journal = Journal(tmp_path)

    assert [record["seq"] for record in journal.read()] == [1, 2]
    assert journal.warnings == [f"{path.name}:3: torn last line skipped"]
    assert journal.last_seq == 2


def test_read_when_the_last_line_is_invalid_json_then_it_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, [candle(1)])
    path = Journal(tmp_path).files()[-1]
    with path.open("a") as handle:
        handle.write("{garbage\n")

    journal = Journal(tmp_path)

    assert [record["seq"] for record in journal.read()] == [1]
    assert journal.warnings == [f"{path.name}:2: torn last line skipped"]


def test_open_for_writing_when_the_last_line_is_torn_then_it_is_truncated_and_appends_continue(
    tmp_path: Path,
) -> None:
    write(tmp_path, [candle(1), candle(2)])
    path = Journal(tmp_path).files()[-1]
    clean_size = path.stat().st_size
    with path.open("a") as handle:
        handle.write('{"seq":3,"ty')

    with Journal(tmp_path) as journal:
        assert journal.open_for_writing() == 2
        assert path.stat().st_size == clean_size
        assert journal.warnings == [f"{path.name}:3: torn last line truncated"]
        journal.append(records([candle(3), candle(4)]))

    reader = Journal(tmp_path)
    assert [record["seq"] for record in reader.read()] == [1, 2, 3, 4]
    assert reader.warnings == []


def test_open_for_writing_when_the_only_line_of_the_newest_file_is_torn_then_last_seq_comes_from_the_file_before(
    tmp_path: Path,
) -> None:
    write(tmp_path, [candle(1, minute=10)])
    torn_file = tmp_path / "2026-01-02.jsonl"
    torn_file.write_text('{"seq":2')

    with Journal(tmp_path) as journal:
        assert journal.open_for_writing() == 1
        assert torn_file.stat().st_size == 0
        journal.append(records([candle(2, minute=24 * 60 + 5)]))

    assert [record["seq"] for record in Journal(tmp_path).read()] == [1, 2]


def test_read_when_a_middle_line_is_corrupt_then_journal_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, [candle(1), candle(2), candle(3)])
    path = Journal(tmp_path).files()[-1]
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = '{"seq":2,"broken\n'
    path.write_text("".join(lines))

    with pytest.raises(JournalError, match=rf"{path.name}:2: invalid JSON"):
        list(Journal(tmp_path).read())


def test_read_when_an_older_file_ends_torn_then_journal_error_is_raised(tmp_path: Path) -> None:
    write(tmp_path, [candle(1), candle(2, minute=24 * 60 + 1)])
    older = Journal(tmp_path).files()[0]
    with older.open("a") as handle:
        handle.write('{"seq":1')

    with pytest.raises(JournalError, match=rf"{older.name}:2"):
        list(Journal(tmp_path).read())


def test_append_when_a_seq_repeats_after_reopening_then_journal_error_and_nothing_is_written(tmp_path: Path) -> None:
    write(tmp_path, [candle(1), candle(2)])

    with Journal(tmp_path) as journal, pytest.raises(JournalError, match="duplicate"):
        journal.append(records([candle(3), candle(2)]))

    assert [record["seq"] for record in Journal(tmp_path).read()] == [1, 2]


def test_append_when_seqs_go_backwards_within_a_batch_then_journal_error(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal, pytest.raises(JournalError, match="seq 4"):
        journal.append(records([candle(5), candle(4)]))

    assert Journal(tmp_path).last_seq == 0


def test_append_when_a_value_is_not_finite_then_journal_error_and_the_journal_is_untouched(tmp_path: Path) -> None:
    write(tmp_path, [candle(1)])
    bad = CandleClosed(**envelope(2), ts=T0, open=float("nan"), high=2.0, low=0.5, close=1.5, volume=3.0)

    with Journal(tmp_path) as journal:
        with pytest.raises(JournalError, match="seq 2"):
            journal.append(records([bad]))
        journal.append(records([candle(2)]))  # the journal is still usable, seq 2 still free

    assert [record["seq"] for record in Journal(tmp_path).read()] == [1, 2]


def test_open_for_writing_when_another_writer_holds_the_journal_then_journal_error(tmp_path: Path) -> None:
    with Journal(tmp_path) as first:
        first.open_for_writing()
        with pytest.raises(JournalError, match="already open for writing"):
            Journal(tmp_path).open_for_writing()
    # Released on close.
    with Journal(tmp_path) as again:
        assert again.open_for_writing() == 0


def test_read_when_the_directory_does_not_exist_then_nothing_is_yielded(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "missing")

    assert list(journal.read()) == []
    assert journal.last_seq == 0


def test_append_when_fsync_is_on_then_records_are_written_the_same(tmp_path: Path) -> None:
    with Journal(tmp_path, fsync=True) as journal:
        journal.append(records([candle(1), candle(2, minute=DAY_MS // 60_000 + 1)]))

    assert [record["seq"] for record in Journal(tmp_path).read()] == [1, 2]
