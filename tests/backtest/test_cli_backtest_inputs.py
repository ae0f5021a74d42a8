"""The `backtest` command's inputs: --from/--to, --data, --out, the progress bar and Ctrl+C."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

import desk.cli_backtest as cli_backtest
import main
from desk.backtest import BacktestResult
from desk.core.clock import parse_utc_ms
from tests.backtest.test_backtest_runs import gbm_rows, write_csv
from tests.conftest import config_data_for_tests, deep_update, read_journal

START = parse_utc_ms("2026-03-01T00:00:00Z", "start")
SEED_CANDLES = 120  # config_data_for_tests


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    data = deep_update(config_data_for_tests(), {"feed": {"symbols": ["BTC/USD"]}})
    data["workers"] = [w for w in data["workers"] if w["symbol"] == "BTC/USD"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    # Two days and an hour of minutes from 2026-03-01 00:00 UTC.
    return write_csv(tmp_path / "btc.csv", gbm_rows(49 * 60, seed=5))


def backtest(config_path: Path, *args: str) -> int:
    return main.main(["--config", str(config_path), "--log-level", "WARNING", "backtest", *args])


def journaled_candle_range(out: Path) -> tuple[int, int]:
    """First and last mark of the run (stamped at candle close), from the journal's equity series."""
    series = [r for r in read_journal(out / "journal") if r["type"] == "EquitySeries"]
    return series[0]["start_ts"], series[-1]["ts_event"]


def test_backtest_when_from_and_to_are_dates_then_they_mean_utc_midnight(
    tmp_path: Path, config_path: Path, data: Path
) -> None:
    out = tmp_path / "out"
    code = backtest(
        config_path,
        "--data",
        f"BTC/USD={data}",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
        "--out",
        str(out),
        "--no-progress",
    )
    assert code == 0
    first_close, last_close = journaled_candle_range(out)
    # Warm-up takes the first seed candles; the last candle traded opens at 23:59 and closes at midnight.
    assert first_close == START + (SEED_CANDLES + 1) * 60_000
    assert last_close == START + 24 * 60 * 60_000


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-01Z", "2026-03-02z"),  # a date with the UTC designator
        ("2026-03-01T02:00+02:00", "2026-03-01T19:00-05:00"),  # offsets: 00:00 and 24:00 UTC
        ("2026-03-01T00:00", "2026-03-02T00:00:00.000"),  # no offset: UTC, as --help says
    ],
)
def test_backtest_when_from_and_to_carry_zones_or_none_then_they_are_read_as_utc(
    tmp_path: Path, config_path: Path, data: Path, start: str, end: str
) -> None:
    out = tmp_path / "out"
    code = backtest(
        config_path, "--data", f"BTC/USD={data}", "--from", start, "--to", end, "--out", str(out), "--no-progress"
    )
    assert code == 0
    assert journaled_candle_range(out) == (START + (SEED_CANDLES + 1) * 60_000, START + 24 * 60 * 60_000)


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-03-02", "2026-03-01T12:00Z"), ("2026-03-01T06:00Z", "2026-03-01T06:00Z")],
)
def test_backtest_when_from_is_not_before_to_then_bad_input_and_out_untouched(
    tmp_path: Path, config_path: Path, data: Path, capsys: pytest.CaptureFixture[str], start: str, end: str
) -> None:
    out = tmp_path / "out"
    code = backtest(
        config_path, "--data", f"BTC/USD={data}", "--from", start, "--to", end, "--out", str(out), "--no-progress"
    )
    assert code == 2
    assert "--from" in capsys.readouterr().err
    assert not out.exists()


def test_backtest_when_from_is_not_a_time_then_bad_input_names_the_option(
    tmp_path: Path, config_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = backtest(config_path, "--data", f"BTC/USD={data}", "--from", "March 1st", "--out", str(out), "--no-progress")
    assert code == 2
    assert "--from" in capsys.readouterr().err
    assert not out.exists()


def test_backtest_when_two_files_hold_one_symbol_then_bad_input_names_both(
    tmp_path: Path, config_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_csv(tmp_path / "btc2.csv", gbm_rows(100, seed=6))
    out = tmp_path / "out"
    code = backtest(config_path, "--data", f"BTC/USD={data}", f"BTC/USD={other}", "--out", str(out), "--no-progress")
    assert code == 2
    error = capsys.readouterr().err
    assert "btc.csv" in error and "btc2.csv" in error
    assert not out.exists()


def test_backtest_when_out_holds_other_files_then_refused_and_left_as_it_was(
    tmp_path: Path, config_path: Path, data: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert backtest(config_path, "--data", f"BTC/USD={data}", "--out", str(out), "--no-progress") == 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_backtest_when_out_is_a_file_then_bad_input_and_the_file_is_kept(
    tmp_path: Path, config_path: Path, data: Path
) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert backtest(config_path, "--data", f"BTC/USD={data}", "--out", str(out), "--no-progress") == 2
    assert out.read_text() == "not a folder"


def test_backtest_when_out_is_an_empty_folder_then_the_run_goes_there(
    tmp_path: Path, config_path: Path, data: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert backtest(config_path, "--data", f"BTC/USD={data}", "--out", str(out), "--no-progress") == 0
    assert (out / "desk.db").exists() and (out / "report.json").exists()


def test_backtest_when_the_bar_finishes_then_it_counts_every_traded_minute(
    tmp_path: Path, config_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backtest(config_path, "--data", f"BTC/USD={data}", "--out", str(tmp_path / "out")) == 0
    traded = 49 * 60 - SEED_CANDLES  # the warm-up minutes are not traded, so not counted
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"{traded}/{traded}" in bar and "100%" in bar


def test_backtest_when_interrupted_then_exit_130_and_no_report_beside_the_partial_store(
    tmp_path: Path, config_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted_run(*args: object, **kwargs: object) -> BacktestResult:
        (tmp_path / "out" / "journal").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_backtest, "run_backtest", interrupted_run)
    assert backtest(config_path, "--data", f"BTC/USD={data}", "--out", str(tmp_path / "out"), "--no-progress") == 130
    assert str(tmp_path / "out") in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["journal"]


def test_parse_time_when_given_milliseconds_then_exact() -> None:
    assert parse_utc_ms("2026-03-01T00:00:00.001Z", "--from") == START + 1
    assert parse_utc_ms("2026-03-01T00:00:00.999Z", "--from") == START + 999


def test_namespace_when_from_is_empty_then_bad_input(tmp_path: Path) -> None:
    args = argparse.Namespace(start="", end=None)
    with pytest.raises(cli_backtest.ConfigError, match="--from"):
        cli_backtest.parse_window(args)


def test_backtest_when_a_worker_never_trades_then_the_report_still_has_its_line(
    tmp_path: Path, config_path: Path, data: Path
) -> None:
    out = tmp_path / "out"
    # Two hours are all warm-up (SEED_CANDLES = 120): no worker can trade, and each still gets its line.
    code = backtest(
        config_path, "--data", f"BTC/USD={data}", "--to", "2026-03-01T02:00Z", "--out", str(out), "--no-progress"
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    expected = [w["name"] for w in yaml.safe_load(config_path.read_text())["workers"] if w.get("enabled", True)]
    assert expected and sorted(report["by_worker"]) == sorted(expected)
    assert all(line["trade_count"] == 0 for line in report["by_worker"].values())


def test_backtest_when_the_data_path_holds_an_equals_sign_then_the_symbol_is_what_precedes_the_first(
    tmp_path: Path, config_path: Path, data: Path
) -> None:
    odd = tmp_path / "run=1"
    odd.mkdir()
    moved = data.rename(odd / "btc=usd.csv")
    sources = cli_backtest.parse_sources([f"BTC/USD={moved}"], ["BTC/USD"], None)
    assert [(s.symbol, s.path) for s in sources] == [("BTC/USD", moved)]
    # A bare path that names a file is a path, "=" or not.
    assert [s.path for s in cli_backtest.parse_sources([str(moved)], ["BTC/USD"], None)] == [moved]
