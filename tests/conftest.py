"""Shared fixtures: configs pointed at a temporary store, and journal readers."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from desk.config import DeskConfig, parse_config
from desk.core.events import WALL_CLOCK_FIELDS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "config.yaml"


def default_config_data() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def deep_update(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., DeskConfig]:
    """Build a config from configs/config.yaml with overrides and flat-out speed.

    Store paths are relative (`journal/`, `desk.db`), so they land in whatever
    base_dir the runtime is given, and two runs in two folders share one config hash.
    """

    def build(overrides: dict[str, Any] | None = None) -> DeskConfig:
        return parse_config(deep_update(config_data_for_tests(), overrides or {}))

    return build


def config_data_for_tests() -> dict[str, Any]:
    return deep_update(
        default_config_data(),
        {
            "feed": {"seed_candles": 120, "simulated": {"speed": 0}},
            "store": {"journal_dir": "journal", "database_url": "sqlite:///desk.db"},
        },
    )


def read_journal(journal_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(journal_dir.glob("*.jsonl")):
        with path.open() as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records


def without_wall_clock(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_FIELDS} for r in records]
