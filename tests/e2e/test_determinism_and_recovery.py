"""Same seed, same journal; a crash loses nothing; halts survive restarts; a bad worker is isolated."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from desk.core.types import Candle, Signal
from desk.runtime import TradingRuntime
from desk.services.store.store import EventStore
from desk.strategies.base import CandleWindow, StrategyParams
from tests.conftest import PROJECT_ROOT, read_journal, without_wall_clock

ONE_DAY = 24 * 60


def run(config, base_dir: Path, candles: int) -> TradingRuntime:
    runtime = TradingRuntime(config, base_dir=base_dir)
    asyncio.run(runtime.run(max_candles=candles))
    return runtime


@pytest.mark.slow
def test_run_when_repeated_with_the_same_seed_then_the_journal_is_identical(make_config, tmp_path: Path) -> None:
    run(make_config(), tmp_path / "a", ONE_DAY)
    run(make_config(), tmp_path / "b", ONE_DAY)
    journal_a = without_wall_clock(read_journal(tmp_path / "a" / "journal"))
    journal_b = without_wall_clock(read_journal(tmp_path / "b" / "journal"))
    assert any(r["type"] == "OrderFilled" for r in journal_a)
    assert journal_a == journal_b


@pytest.mark.slow
def test_run_when_the_seed_differs_then_the_journal_differs(make_config, tmp_path: Path) -> None:
    run(make_config(), tmp_path / "a", 600)
    run(make_config({"feed": {"simulated": {"seed": 8}}}), tmp_path / "b", 600)
    closes_a = [r["close"] for r in read_journal(tmp_path / "a" / "journal") if r["type"] == "CandleClosed"]
    closes_b = [r["close"] for r in read_journal(tmp_path / "b" / "journal") if r["type"] == "CandleClosed"]
    assert len(closes_a) == len(closes_b) > 0
    assert closes_a != closes_b


class ExplodingStrategy:
    """A strategy that raises on every candle."""

    Params = StrategyParams
    warmup = 1

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        raise RuntimeError("boom on every candle")

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        return {}


@pytest.mark.slow
def test_worker_when_its_strategy_raises_every_time_then_it_is_isolated_and_others_trade(
    make_config, tmp_path: Path
) -> None:
    config = make_config({"settings": {"max_consecutive_faults": 3}})
    runtime = TradingRuntime(config, base_dir=tmp_path)
    broken = runtime.core.workers[0]
    broken.strategy = ExplodingStrategy()
    asyncio.run(runtime.run(max_candles=ONE_DAY))
    records = read_journal(tmp_path / "journal")
    faults = [r for r in records if r["type"] == "WorkerFaulted"]
    assert [f["worker"] for f in faults] == [broken.name] * 3
    assert faults[-1]["error_type"] == "RuntimeError" and "boom" in faults[-1]["message"]
    disabled = [r for r in records if r["type"] == "WorkerStateChanged" and r["state"] == "disabled"]
    assert [d["worker"] for d in disabled] == [broken.name]
    fills_by_others = {r["worker"] for r in records if r["type"] == "OrderFilled"}
    assert fills_by_others and broken.name not in fills_by_others


def _write_config(make_config, tmp_path: Path, overrides: dict[str, Any]) -> Path:
    config = make_config(overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def _journal_candles(journal: Path) -> int:
    count = 0
    for path in journal.glob("*.jsonl"):
        with path.open("rb") as handle:
            count += sum(1 for line in handle if b'"CandleClosed"' in line)
    return count


@pytest.mark.slow
def test_restart_when_killed_mid_run_then_nothing_is_lost_or_duplicated_and_trading_continues(
    make_config, tmp_path: Path
) -> None:
    config_path = _write_config(make_config, tmp_path, {})
    command = [sys.executable, str(PROJECT_ROOT / "main.py"), "--config", str(config_path), "--log-level", "WARNING"]
    daemon = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _journal_candles(tmp_path / "journal") < 3 * 1500 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=30)
    before = read_journal(tmp_path / "journal")
    open_before = _open_positions(before)
    assert len(before) > 1000 and open_before is not None

    restarted = subprocess.run([*command, "--candles", "600"], cwd=tmp_path, capture_output=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr.decode()[-2000:]
    after = read_journal(tmp_path / "journal")
    seqs = [r["seq"] for r in after]
    assert seqs == list(range(1, len(after) + 1)), "journal seqs must be contiguous, without gaps or repeats"
    assert len({r["id"] for r in after}) == len(after)
    survived = [r for r in after[: len(before)]]
    assert [r["seq"] for r in survived] == [r["seq"] for r in before]
    started = [r for r in after if r["type"] == "RuntimeStarted"]
    assert started[-1]["recovered_events"] == len(before)
    # Positions open at the crash are still managed after the restart: each is closed later or still open.
    open_after = _open_positions(after)
    closed_later = {r["position_id"] for r in after[len(before) :] if r["type"] == "PositionClosed"}
    for position_id in open_before:
        assert position_id in closed_later or position_id in open_after
    # Candles continue from the minute after the last one journaled before the kill.
    last_ts_before = max(r["ts"] for r in before if r["type"] == "CandleClosed")
    first_ts_after = min(r["ts"] for r in after[len(before) :] if r["type"] == "CandleClosed")
    assert first_ts_after == last_ts_before + 60_000
    assert any(r["type"] == "OrderFilled" for r in after[len(before) :])
    # The projection agrees with the journal after recovery.
    store = EventStore(make_config().store, tmp_path)
    try:
        store.open()
        assert store.last_seq == len(after)
    finally:
        store.close()


def _open_positions(records: list[dict[str, Any]]) -> set[str]:
    open_ids: set[str] = set()
    for record in records:
        if record["type"] == "PositionOpened":
            open_ids.add(record["position_id"])
        elif record["type"] == "PositionClosed":
            open_ids.discard(record["position_id"])
    return open_ids


@pytest.mark.slow
def test_halt_when_the_daemon_restarts_then_trading_stays_halted_until_resumed(make_config, tmp_path: Path) -> None:
    config = make_config()
    run(config, tmp_path, 60)
    store = EventStore(config.store, tmp_path)
    store.open()
    store.submit_command("halt", {}, 0)
    store.close()

    halted = run(config, tmp_path, 120)
    assert halted.core.trading_state.value == "HALTED"
    restarted = run(config, tmp_path, 120)
    assert restarted.core.trading_state.value == "HALTED"
    records = read_journal(tmp_path / "journal")
    halt_seq = next(r["seq"] for r in records if r["type"] == "RiskStateChanged" and r["state"] == "HALTED")
    entries_after_halt = [
        r for r in records if r["seq"] > halt_seq and r["type"] == "OrderFilled" and r["purpose"] == "entry"
    ]
    assert entries_after_halt == []
    denied = [r for r in records if r["seq"] > halt_seq and r["type"] == "OrderDenied"]
    assert all(d["rule"] == "state_halted" for d in denied)

    store = EventStore(config.store, tmp_path)
    store.open()
    store.submit_command("resume", {}, 0)
    store.close()
    resumed = run(config, tmp_path, 10)
    assert resumed.core.trading_state.value == "ACTIVE"
