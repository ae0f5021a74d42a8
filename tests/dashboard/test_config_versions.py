"""ConfigHistory (validated, backed-up, atomic saves with redacted diffs) and the restart/live split."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from desk.config import parse_config, parse_config_text
from desk.config_versions import (
    HISTORY_DIR,
    ConfigConflictError,
    ConfigHistory,
    live_changes,
    redact_text,
    restart_required,
)
from desk.core.errors import ConfigError
from tests.conftest import DEFAULT_CONFIG, config_data_for_tests, deep_update


def _config_text(overrides: dict | None = None) -> str:
    return yaml.safe_dump(deep_update(config_data_for_tests(), overrides or {}), sort_keys=False)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "configs" / "config.yaml"
    path.parent.mkdir()
    path.write_text("# operator notes\n" + _config_text())
    return path


def _leftover_temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".config"))


def test_save_when_text_is_valid_then_file_replaced_and_both_versions_kept(config_file: Path):
    history = ConfigHistory(config_file)
    original = config_file.read_text()
    new_text = _config_text({"risk": {"stop_pct": 0.03}})

    saved = history.save(new_text)

    assert config_file.read_text() == new_text
    assert [v.version for v in history.versions()] == [1, 2]
    assert history.read(1) == original
    assert history.read(2) == new_text
    assert (saved.version, saved.previous_version, saved.changed) == (2, 1, True)
    assert (config_file.parent / HISTORY_DIR / "config.1.yaml").is_file()
    assert history.current_version() == 2
    assert "-  stop_pct: 0.02" in saved.diff and "+  stop_pct: 0.03" in saved.diff


def test_save_when_called_repeatedly_then_versions_increase_without_duplicates(config_file: Path):
    history = ConfigHistory(config_file)
    first = history.save(_config_text({"risk": {"stop_pct": 0.03}}))
    second = history.save(_config_text({"risk": {"stop_pct": 0.04}}))
    unchanged = history.save(_config_text({"risk": {"stop_pct": 0.04}}))

    assert (first.version, second.version) == (2, 3)
    assert second.previous_version == 2  # the text saved by `first` was already a version: no second backup
    assert unchanged.changed is False and unchanged.version == 3 and unchanged.diff == ""
    assert [v.version for v in history.versions()] == [1, 2, 3]
    assert all(v.size_bytes > 0 and v.saved_wall_ms > 0 for v in history.versions())


def test_save_when_file_was_edited_by_hand_then_hand_edit_gets_its_own_version(config_file: Path):
    history = ConfigHistory(config_file)
    history.save(_config_text({"risk": {"stop_pct": 0.03}}))
    hand_edit = _config_text({"risk": {"stop_pct": 0.035}})
    config_file.write_text(hand_edit)

    saved = history.save(_config_text({"risk": {"stop_pct": 0.04}}))

    assert (saved.previous_version, saved.version) == (3, 4)
    assert history.read(3) == hand_edit


@pytest.mark.parametrize(
    ("text", "expected_path"),
    [
        ("workers: [name: x\n", ""),  # invalid YAML
        (_config_text({"risk": {"stop_loss": 0.02}}), "risk.stop_loss"),  # unknown key
        (_config_text({"risk": {"stop_pct": "wide"}}), "risk.stop_pct"),  # bad value
        (_config_text({"settings": {"api_key": "abc123456"}}), "settings.api_key"),  # a secret
    ],
)
def test_save_when_text_is_invalid_then_config_error_and_nothing_written(
    config_file: Path, text: str, expected_path: str
):
    history = ConfigHistory(config_file)
    before = config_file.read_bytes()

    with pytest.raises(ConfigError) as raised:
        history.save(text)

    assert expected_path in [path for path, _ in raised.value.problems]
    assert config_file.read_bytes() == before
    assert history.versions() == []


def test_save_when_file_changed_since_loaded_then_conflict_and_nothing_written(config_file: Path):
    history = ConfigHistory(config_file)
    loaded = config_file.read_text()
    config_file.write_text(_config_text({"risk": {"stop_pct": 0.035}}))
    before = config_file.read_bytes()

    with pytest.raises(ConfigConflictError):
        history.save(_config_text({"risk": {"stop_pct": 0.04}}), expected_current=loaded)

    assert config_file.read_bytes() == before


def test_save_when_replacing_then_no_temp_files_left_and_mode_kept(config_file: Path):
    os.chmod(config_file, 0o640)
    history = ConfigHistory(config_file)

    history.save(_config_text({"risk": {"stop_pct": 0.03}}))

    assert _leftover_temp_files(config_file.parent) == []
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o640


def test_save_when_write_fails_then_original_file_intact_and_temp_removed(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
):
    history = ConfigHistory(config_file)
    before = config_file.read_bytes()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        history.save(_config_text({"risk": {"stop_pct": 0.03}}))

    assert config_file.read_bytes() == before
    assert _leftover_temp_files(config_file.parent) == []


def test_rollback_when_version_exists_then_its_text_is_current_as_a_new_version(config_file: Path):
    history = ConfigHistory(config_file)
    original = config_file.read_text()
    history.save(_config_text({"risk": {"stop_pct": 0.03}}))

    rolled = history.rollback(1)

    assert config_file.read_text() == original
    assert rolled.version == 3 and rolled.previous_version == 2
    assert "+  stop_pct: 0.02" in rolled.diff
    with pytest.raises(KeyError):
        history.read(99)


def test_diff_when_text_holds_secret_looking_values_then_they_are_redacted(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DESK_KRAKEN_API_SECRET", "canary-zz-9876543210")
    history = ConfigHistory(config_file)
    old = "store:\n  database_url: postgresql://desk:hunter2pw@db/desk\n"
    new = (
        "store:\n  database_url: postgresql://desk:hunter3pw@db/desk\n"
        "x:\n  api_key: abcdef123\n  params: {token: 'tok-999999', fast: 3}\n  note: canary-zz-9876543210\n"
    )

    diff = history.diff(old, new)

    for secret in ("hunter2pw", "hunter3pw", "abcdef123", "tok-999999", "canary-zz-9876543210"):
        assert secret not in diff
    assert "fast: 3" in diff
    assert redact_text("feed: http://h/x?user=a&password=swordfish99") == "feed: http://h/x?user=a&password=***"
    assert redact_text("# api_key: commented-out-999") == "# api_key: ***"


def test_redact_text_when_shipped_config_then_unchanged_so_it_stays_editable():
    shipped = DEFAULT_CONFIG.read_text()  # its comments mention secrets in prose ("No secrets here: …")

    assert redact_text(shipped) == shipped


def test_restart_required_when_startup_keys_change_then_listed_apart_from_live_changes():
    old = parse_config_text(_config_text())
    new_data = deep_update(
        config_data_for_tests(),
        {
            "settings": {"mode": "live", "starting_cash": 5000.0, "quote_currency": "USDT"},
            "feed": {"seed_candles": 10},
            "store": {"fsync": True},
            "telemetry": {"batch_size": 5},
            "risk": {"stop_pct": 0.03},
            "portfolio": {"fees": {"taker": 0.001}},
            "ml": {"enabled": False},
        },
    )
    new = parse_config(new_data)

    assert restart_required(old, new) == [
        "settings.mode",
        "settings.starting_cash",
        "settings.quote_currency",
        "feed.seed_candles",
        "portfolio.fees.taker",
        "telemetry.batch_size",
        "store.fsync",
    ]
    assert live_changes(old, new) == ["risk.stop_pct", "ml.enabled"]


def test_live_changes_when_workers_change_then_each_change_is_live_by_worker_name():
    base = config_data_for_tests()
    old = parse_config(base)
    workers = [dict(w) for w in base["workers"]]
    workers[0] = {**workers[0], "enabled": False, "weight": 0.5, "params": {**workers[0]["params"], "lookback": 30}}
    workers[1] = {**workers[1], "risk": {"trailing_stop_pct": 0.02}}
    removed = workers.pop(2)["name"]
    workers.append({"name": "sol-rsi", "symbol": "SOL/USD", "strategy": "rsi", "params": {}})
    workers.reverse()  # order alone is not a change
    new = parse_config({**base, "workers": workers})
    first, second = base["workers"][0]["name"], base["workers"][1]["name"]

    assert live_changes(old, new) == [
        f"workers[{first}].weight",
        f"workers[{first}].params.lookback",
        f"workers[{first}].enabled",
        f"workers[{second}].risk.trailing_stop_pct",
        f"workers[{removed}]",
        "workers[sol-rsi]",
    ]
    assert restart_required(old, new) == []


def test_live_changes_when_worker_symbol_changes_then_applied_live_by_rebuilding_the_worker():
    base = config_data_for_tests()
    old = parse_config(base)
    workers = [dict(w) for w in base["workers"]]
    workers[0] = {**workers[0], "symbol": "ETH/USD"}
    new = parse_config({**base, "workers": workers})

    assert restart_required(old, new) == []
    assert live_changes(old, new) == [f"workers[{workers[0]['name']}].symbol"]
