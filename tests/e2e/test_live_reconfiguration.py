"""Operator commands the daemon applies between loop iterations: config reloads and paper account resets."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import yaml

from desk.config import DeskConfig
from desk.runtime import TradingRuntime
from desk.services.store.store import EventStore
from tests.conftest import read_journal


def write_config(path: Path, config: DeskConfig) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def queue(config: DeskConfig, base: Path, command: str, payload: dict) -> int:
    store = EventStore(config.store, base)
    try:
        return store.submit_command(command, payload, 0)
    finally:
        store.close()


def run(config: DeskConfig, base: Path, config_path: Path, candles: int) -> TradingRuntime:
    runtime = TradingRuntime(config, base_dir=base, config_path=config_path)
    asyncio.run(runtime.run(max_candles=candles))
    return runtime


@pytest.mark.slow
def test_reload_config_when_workers_change_then_live_parts_apply_and_restart_parts_wait(
    make_config, tmp_path: Path
) -> None:
    config = make_config()
    path = tmp_path / "config.yaml"
    write_config(path, config)
    run(config, tmp_path, path, 200)

    data = config.model_dump(mode="json")
    data["workers"][0]["enabled"] = False
    data["workers"][3]["params"]["fast"] = 20
    data["workers"].append({"name": "sol-breakout", "symbol": "SOL/USD", "strategy": "breakout", "params": {}})
    data["workers"] = [w for w in data["workers"] if w["name"] != "eth-rsi"]
    data["risk"]["max_concurrent_positions"] = 3
    data["feed"]["simulated"]["speed"] = 120
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    command_id = queue(config, tmp_path, "reload_config", {"path": str(path), "version": 2, "diff": "-a\n+b"})

    runtime = run(config, tmp_path, path, 200)

    records = read_journal(tmp_path / "journal")
    (changed,) = [r for r in records if r["type"] == "ConfigChanged"]
    assert changed["needs_restart"] == ["feed.simulated.speed"]
    assert changed["applied"] == [
        "risk.max_concurrent_positions",
        "workers[btc-momentum].enabled",
        "workers[eth-rsi]",
        "workers[eth-macd].params.fast",
        "workers[sol-breakout]",
    ]
    (applied,) = [r for r in records if r["type"] == "ConfigApplied" and r["seq"] > changed["seq"]]
    worker_changes = "\n".join(applied["changes"]["workers"])
    for expected in ("eth-macd: strategy or params", "sol-breakout: added", "eth-rsi: removed"):
        assert expected in worker_changes
    assert [w.name for w in runtime.core.workers] == [
        "btc-momentum",
        "btc-breakout",
        "eth-macd",
        "sol-bollinger",
        "sol-breakout",
    ]
    assert runtime.core.risk.config.max_concurrent_positions == 3
    assert runtime.config.feed.simulated.speed == 0  # the running feed is unchanged until a restart
    assert runtime.core.worker("btc-momentum").status.value == "disabled"
    (ack,) = [r for r in records if r["type"] == "CommandApplied" and r["command_id"] == command_id]
    assert ack["status"] == "applied" and "restart needed for feed.simulated.speed" in ack["detail"]
    later_intents = {r["worker"] for r in records if r["type"] == "IntentProposed" and r["seq"] > changed["seq"]}
    assert "btc-momentum" not in later_intents and "eth-rsi" not in later_intents


def test_reload_config_when_the_file_is_invalid_then_rejected_and_nothing_changes(make_config, tmp_path: Path) -> None:
    config = make_config()
    path = tmp_path / "config.yaml"
    write_config(path, config)
    run(config, tmp_path, path, 5)
    path.write_text("workers: [")
    command_id = queue(config, tmp_path, "reload_config", {"path": str(path), "version": 2, "diff": ""})
    runtime = run(config, tmp_path, path, 5)
    records = read_journal(tmp_path / "journal")
    (ack,) = [r for r in records if r["type"] == "CommandApplied" and r["command_id"] == command_id]
    assert ack["status"] == "rejected" and "invalid YAML" in ack["detail"]
    assert not [r for r in records if r["type"] == "ConfigChanged"]
    assert [w.name for w in runtime.core.workers] == [w.name for w in config.workers]


@pytest.mark.slow
def test_reset_account_when_positions_are_open_then_flattened_and_cash_restored(make_config, tmp_path: Path) -> None:
    config = make_config()
    run(config, tmp_path, tmp_path / "unused.yaml", 1500)
    queue(config, tmp_path, "reset_account", {})
    runtime = run(config, tmp_path, tmp_path / "unused.yaml", 1)
    records = read_journal(tmp_path / "journal")
    (reset,) = [r for r in records if r["type"] == "AccountReset"]
    assert reset["cash"] == config.settings.starting_cash
    assert runtime.core.execution.positions == {}
    assert runtime.broker.open_orders == ()
    samples = [r for r in records if r["type"] == "EquitySampled" and r["seq"] > reset["seq"]]
    assert samples[0]["equity"] == config.settings.starting_cash
    # The control room reads the projection: nothing may still look open there.
    with sqlite3.connect(tmp_path / "desk.db") as connection:
        open_positions = connection.execute("SELECT COUNT(*) FROM positions WHERE status = 'open'").fetchone()[0]
        open_orders = connection.execute("SELECT COUNT(*) FROM orders WHERE status = 'open'").fetchone()[0]
    assert (open_positions, open_orders) == (0, 0)
