"""The runtime's edges: telemetry over real loopback HTTP, slow strategies timed out, CLI paths."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import main
from desk.config import DeskConfig
from desk.core.types import Candle, Signal
from desk.runtime import TradingRuntime
from desk.strategies.base import CandleWindow, StrategyParams
from tests.conftest import read_journal
from tests.support.telemetry_collector import CollectorServer


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[CollectorServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = CollectorServer()
    server.start()
    yield server
    server.stop()


def test_run_when_telemetry_endpoint_configured_then_every_journaled_event_is_posted(
    make_config, tmp_path: Path, collector: CollectorServer
) -> None:
    config = make_config({"telemetry": {"endpoint": collector.url, "batch_size": 50, "timeout_s": 2.0}})
    asyncio.run(TradingRuntime(config, base_dir=tmp_path).run(max_candles=200))
    journal = read_journal(tmp_path / "journal")
    posted = [record for batch in collector.accepted for record in batch]
    assert [r["seq"] for r in posted] == [r["seq"] for r in journal]
    assert all(request.path == "/ingest" for request in collector.requests)


class SleepyStrategy:
    """Takes far longer than the worker time limit on every live candle (warm-up runs on the main thread)."""

    Params = StrategyParams
    warmup = 1

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.3)
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        return {}


def test_worker_when_strategy_exceeds_time_limit_then_timeout_faults_disable_it_and_others_continue(
    make_config, tmp_path: Path
) -> None:
    config = make_config({"settings": {"worker_timeout_ms": 50, "max_consecutive_faults": 2}})
    runtime = TradingRuntime(config, base_dir=tmp_path)
    slow = runtime.core.workers[2]
    slow.strategy = SleepyStrategy()
    asyncio.run(runtime.run(max_candles=30))
    records = read_journal(tmp_path / "journal")
    faults = [r for r in records if r["type"] == "WorkerFaulted"]
    assert {f["worker"] for f in faults} == {slow.name}
    assert faults[0]["error_type"] == "Timeout" and "exceeded" in faults[0]["message"]
    disabled = [r for r in records if r["type"] == "WorkerStateChanged" and r["state"] == "disabled"]
    assert [d["worker"] for d in disabled] == [slow.name]
    assert len([r for r in records if r["type"] == "EquitySampled"]) == 30


def run_cli(config: DeskConfig, base: Path, monkeypatch: pytest.MonkeyPatch, candles: int) -> Path:
    """Write `config` to base/config.yaml, run the daemon's CLI on it from `base` for `candles`; return its path."""
    import yaml

    config_path = base / "config.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    monkeypatch.chdir(base)
    assert main.main(["--config", str(config_path), "--candles", str(candles), "--log-level", "WARNING"]) == 0
    return config_path


def test_rebuild_db_command_when_database_deleted_then_recreated_from_journal(
    make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = run_cli(make_config(), tmp_path, monkeypatch, 120)
    (tmp_path / "desk.db").unlink()
    assert main.main(["--config", str(config_path), "--log-level", "WARNING", "rebuild-db"]) == 0
    journal_count = len(read_journal(tmp_path / "journal"))
    assert f"from {journal_count} journaled events" in capsys.readouterr().out


def test_tail_when_filtered_by_type_then_prints_only_those_events(
    make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = run_cli(make_config(), tmp_path, monkeypatch, 30)
    capsys.readouterr()
    assert main.main(["--config", str(config_path), "tail", "-n", "5", "--type", "EquitySampled"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all("EquitySampled" in line for line in lines)
