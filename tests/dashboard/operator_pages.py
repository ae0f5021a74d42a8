"""Shared setup for the operator-page tests: a real config and store in tmp_path, AppTest helpers."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT_ROOT, config_data_for_tests, deep_update

PAGES = PROJECT_ROOT / "dashboard" / "pages"
PASSWORD = "canary-pw-1234567"
API_SECRET = "canary-zz-9876543210"
CANARIES = (PASSWORD, API_SECRET)
# The first run imports pandas, pydantic models and the strategies: well over AppTest's 3 s default on a busy box.
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Desk:
    """A config file and its store, both under tmp_path."""

    config_path: Path
    database_path: Path

    def commands(self) -> list[dict[str, Any]]:
        """Every inbox row, oldest first ([] when the database was never created)."""
        if not self.database_path.exists():
            return []
        with sqlite3.connect(self.database_path) as connection:
            connection.row_factory = sqlite3.Row
            try:
                rows = connection.execute("SELECT * FROM commands ORDER BY command_id").fetchall()
            except sqlite3.OperationalError:  # no commands table: nothing was ever queued
                return []
        return [dict(row) for row in rows]


def config_text(tmp_path: Path, overrides: dict[str, Any] | None = None) -> str:
    """The shipped config with flat-out speed and absolute store paths under tmp_path/store."""
    store = {"journal_dir": str(tmp_path / "store" / "journal"), "database_url": f"sqlite:///{tmp_path}/store/desk.db"}
    data = deep_update(config_data_for_tests(), {"store": store, **(overrides or {})})
    return "# Operator notes: keep this comment.\n" + yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(name="desk")
def desk_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Desk:
    """Point the control room at a fresh config (DESK_CONFIG), with the password and a canary secret set."""
    config_path = tmp_path / "configs" / "config.yaml"
    config_path.parent.mkdir()
    config_path.write_text(config_text(tmp_path))
    monkeypatch.setenv("DESK_CONFIG", str(config_path))
    monkeypatch.delenv("DESK_STORE_DIR", raising=False)
    monkeypatch.setenv("DESK_DASHBOARD_PASSWORD", PASSWORD)
    monkeypatch.setenv("DESK_KRAKEN_API_SECRET", API_SECRET)
    monkeypatch.setattr("dashboard.auth.FAILED_UNLOCK_DELAY_S", 0.0)
    return Desk(config_path, tmp_path / "store" / "desk.db")


def open_page(name: str) -> AppTest:
    """Run one page file on its own."""
    return AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT_S).run()


def unlock(at: AppTest, password: str = PASSWORD) -> AppTest:
    """Type the operator password into the sidebar form and submit it."""
    at.sidebar.text_input(key="desk_operator_password").input(password)
    at.sidebar.button(key="FormSubmitter:desk_operator_unlock-Unlock").click()
    return at.run()


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def rendered_text(at: AppTest) -> str:
    """Everything the page sent to the browser, main area and sidebar: every node's proto, as text.

    A proto's text form holds each field (value, body, label, help,
    placeholder, default, the Arrow bytes of a dataframe), so a string that
    reached the browser in any of them is in here.
    """
    parts: list[str] = []
    for root in (at.main, at.sidebar):
        for node in root:
            proto = getattr(node, "proto", None)
            if proto is not None:
                parts.append(str(proto))
            for attribute in ("value", "body", "label"):
                try:
                    parts.append(repr(getattr(node, attribute)))
                except Exception:  # not every node has every attribute; some values cannot be computed
                    continue
    return "\n".join(parts)


def assert_no_canary(at: AppTest) -> None:
    text = rendered_text(at)
    assert text  # the walk saw the page
    for canary in CANARIES:
        assert canary not in text


def widget(at: AppTest, kind: str, key_suffix: str) -> Any:
    """The one widget of `kind` (`text_area`, `button`…) in the main area whose key ends with `key_suffix`.

    The Config page prefixes its keys with a digest of the file it loaded, so tests match on the end.
    """
    matches = [w for w in getattr(at.main, kind) if (w.key or "").endswith(key_suffix)]
    assert len(matches) == 1, f"{kind} *{key_suffix}: {[w.key for w in getattr(at.main, kind)]}"
    return matches[0]


def page_text(at: AppTest) -> str:
    """The visible text of alerts, markdown, captions and code blocks in the main area."""
    elements = [*at.main.error, *at.main.warning, *at.main.info, *at.main.success, *at.main.markdown, *at.main.caption]
    return "\n".join([str(e.value) for e in elements] + [str(c.value) for c in at.main.code])
