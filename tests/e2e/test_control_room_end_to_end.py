"""The control room and a real daemon process: saves and actions reach it and are acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT, read_journal
from tests.dashboard.operator_pages import Desk, desk_fixture, open_page, rendered_text, unlock, widget  # noqa: F401

WAIT_S = 60.0


@pytest.fixture
def daemon(desk: Desk, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real daemon on the desk's config, paced at 20 candles a wall second."""
    text = desk.config_path.read_text().replace("speed: 0", "speed: 1200")
    desk.config_path.write_text(text)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "main.py"),
        "--config",
        str(desk.config_path),
        "--log-level",
        "WARNING",
    ]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: desk.database_path.exists() and _heartbeat(desk) is not None, "the daemon's first heartbeat")
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _heartbeat(desk: Desk) -> Any:
    import sqlite3

    try:
        with sqlite3.connect(desk.database_path) as connection:
            return connection.execute("SELECT wall_ms FROM heartbeat WHERE component = 'daemon'").fetchone()
    except sqlite3.OperationalError:
        return None


def _acknowledged(desk: Desk, command: str) -> dict[str, Any] | None:
    rows = [row for row in desk.commands() if row["command"] == command and row["status"] != "pending"]
    return rows[-1] if rows else None


@pytest.mark.slow
def test_config_save_when_daemon_is_running_then_it_applies_the_change_and_journals_it(
    desk: Desk, daemon: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    original = desk.config_path.read_text()
    new_text = original.replace("  stop_pct: 0.02", "  stop_pct: 0.03", 1)
    at = unlock(open_page("config_editor.py"))
    widget(at, "text_area", ".raw").input(new_text).run()
    widget(at, "button", "rawtab.save").click().run()
    assert not at.exception

    wait_for(lambda: _acknowledged(desk, "reload_config") is not None, "the daemon to apply the reload")
    ack = _acknowledged(desk, "reload_config")
    assert ack is not None and ack["status"] == "applied", ack
    assert daemon.poll() is None, "the daemon keeps running"
    journal = read_journal(tmp_path / "store" / "journal")
    (changed,) = [r for r in journal if r["type"] == "ConfigChanged"]
    assert changed["applied"] == ["risk.stop_pct"] and changed["needs_restart"] == []
    assert "+  stop_pct: 0.03" in changed["diff"]
    assert any(r["type"] == "CommandApplied" and r["seq"] == ack["acked_seq"] for r in journal)

    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


@pytest.mark.slow
def test_halt_button_when_daemon_is_running_then_trading_halts_and_the_page_shows_applied(
    desk: Desk, daemon: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    at = unlock(open_page("controls.py"))
    halt = [b for b in at.main.button if (b.key or "").endswith("halt")]
    assert halt, [b.key for b in at.main.button]
    halt[0].click().run()
    assert not at.exception

    wait_for(lambda: _acknowledged(desk, "halt") is not None, "the daemon to acknowledge the halt")
    assert _acknowledged(desk, "halt")["status"] == "applied"
    journal = read_journal(tmp_path / "store" / "journal")
    halts = [r for r in journal if r["type"] == "RiskStateChanged" and r["state"] == "HALTED"]
    assert [h["rule"] for h in halts] == ["operator_halt"]
    at.run()
    assert not at.exception
    assert "applied" in rendered_text(at)  # the page lists the command with its outcome


def test_secret_canary_when_every_page_renders_then_it_never_appears(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.dashboard.operator_pages import assert_no_canary

    run = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "main.py"),
            "--config",
            str(desk.config_path),
            "--candles",
            "300",
            "--log-level",
            "WARNING",
        ],
        cwd=tmp_path,
        capture_output=True,
        env={**os.environ},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode()[-1000:]
    for page in sorted((PROJECT_ROOT / "dashboard" / "pages").glob("*.py")):
        at = open_page(page.name)
        assert not at.exception, (page.name, [e.value for e in at.exception])
        assert_no_canary(at)
        if any(w.key == "desk_operator_password" for w in at.sidebar.text_input):
            assert_no_canary(unlock(at))
