"""Bad configuration never starts the desk: exit code 2, the key path in the message, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import main
from tests.conftest import deep_update, default_config_data


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def with_override(overrides: dict) -> str:
    return yaml.safe_dump(deep_update(default_config_data(), overrides))


def unknown_top_level_key() -> str:
    data = default_config_data()
    data["risk"]["max_leverage"] = 3
    return yaml.safe_dump(data)


def unknown_strategy() -> str:
    data = default_config_data()
    data["workers"][1]["strategy"] = "moonshot"
    return yaml.safe_dump(data)


BAD_CONFIGS = {
    "unknown key": (unknown_top_level_key, "risk.max_leverage", "unknown key"),
    "wrong type": (
        lambda: with_override({"risk": {"max_concurrent_positions": "many"}}),
        "risk.max_concurrent_positions",
        "integer",
    ),
    "negative risk": (
        lambda: with_override({"risk": {"risk_per_trade_usd": -5}}),
        "risk.risk_per_trade_usd",
        "greater than 0",
    ),
    "unknown strategy": (unknown_strategy, "workers[1].strategy", "available: "),
    "slippage that prices a sale at nothing": (
        lambda: with_override({"portfolio": {"fees": {"slippage_bps": 2.0, "impact_bps_per_volume_pct": 100.0}}}),
        "portfolio.fees",
        "10002 bps",
    ),
    "empty file": (lambda: "", "", "empty"),
    "invalid yaml": (lambda: "settings:\n  mode: [paper\n", "", "invalid YAML: line"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_run_when_config_is_bad_then_exit_2_with_key_path_and_nothing_written(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_text, key_path, phrase = BAD_CONFIGS[case]
    path = write(tmp_path, make_text())
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())

    code = main.main(["--config", str(path), "--candles", "5"])

    error = capsys.readouterr().err
    assert code == 2
    assert key_path in error and phrase in error
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_when_config_is_bad_then_exit_2_and_every_problem_named(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_text, key_path, phrase = BAD_CONFIGS[case]
    code = main.main(["check-config", str(write(tmp_path, make_text()))])
    error = capsys.readouterr().err
    assert code == 2 and key_path in error and phrase in error


def test_check_config_when_several_values_are_bad_then_each_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = with_override({"risk": {"stop_pct": 2, "max_concurrent_positions": 0}, "settings": {"mode": "yolo"}})
    assert main.main(["check-config", str(write(tmp_path, text))]) == 2
    error = capsys.readouterr().err
    for key_path in ("risk.stop_pct", "risk.max_concurrent_positions", "settings.mode"):
        assert key_path in error


def test_check_config_when_a_secret_is_in_the_file_then_rejected_without_echoing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = default_config_data()
    data["settings"]["api_key"] = "canary-do-not-print-123456"
    assert main.main(["check-config", str(write(tmp_path, yaml.safe_dump(data)))]) == 2
    error = capsys.readouterr().err
    assert "settings.api_key" in error and "canary-do-not-print" not in error


def test_check_config_when_default_config_then_ok(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import DEFAULT_CONFIG

    assert main.main(["check-config", str(DEFAULT_CONFIG)]) == 0
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert len(config["workers"]) >= 5
    assert len({w["symbol"] for w in config["workers"]}) >= 3
