"""Structured logging: JSON lines on stderr, and secrets that never reach them.

A canary secret is planted in the environment under a secret-looking name;
whatever path it takes into a log call — a value, a nested dict, an exception
message or traceback, a stdlib logger — the captured stderr must not contain it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from desk.services.logging import REDACTED, configure_logging, get_logger, redact

CANARY = "canary-secret-12345"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back so other tests see what they expect."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    httpx_level = logging.getLogger("httpx").level
    yield
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    logging.getLogger("httpx").setLevel(httpx_level)
    structlog.reset_defaults()


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DESK_TEST_API_KEY", CANARY)
    return CANARY


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Parse captured stderr; fails the test if any line is not a JSON object."""
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def test_log_when_secret_env_value_logged_as_value_then_redacted(canary, capsys):
    configure_logging()
    log = get_logger("desk.test")

    log.info("connecting", credential=canary, note=f"using key {canary} for kraken")

    err = capsys.readouterr().err
    assert canary not in err
    [line] = [json.loads(text) for text in err.splitlines()]
    assert line["credential"] == REDACTED
    assert line["note"] == f"using key {REDACTED} for kraken"  # substring replaced, the rest kept


def test_log_when_secret_env_value_in_nested_dict_then_redacted(canary, capsys):
    configure_logging()

    get_logger("desk.test").info("request", request={"params": [{"nonce": 1, "sig": canary}], "attempt": ("x", canary)})

    err = capsys.readouterr().err
    assert canary not in err
    [line] = [json.loads(text) for text in err.splitlines()]
    assert line["request"] == {"params": [{"nonce": 1, "sig": REDACTED}], "attempt": ["x", REDACTED]}


def test_log_when_secret_env_value_in_exception_message_then_redacted(canary, capsys):
    configure_logging()
    log = get_logger("desk.test")

    try:
        raise RuntimeError(f"exchange rejected key {canary}")
    except RuntimeError as exc:
        log.exception("order_failed", error=exc)
        log.error("order_failed_str", error=str(exc))

    err = capsys.readouterr().err
    assert canary not in err
    failed, failed_str = [json.loads(text) for text in err.splitlines()]
    assert "RuntimeError: exchange rejected key ***" in failed["exception"]  # the traceback, redacted
    assert failed["error"] == failed_str["error"] == f"exchange rejected key {REDACTED}"


def test_log_when_stdlib_logger_carries_secret_then_json_and_redacted(canary, capsys):
    configure_logging()

    logging.getLogger("ccxt.base").warning("auth header %s rejected", canary)

    [line] = stderr_lines(capsys)
    assert (line["event"], line["level"], line["logger"]) == ("auth header *** rejected", "warning", "ccxt.base")


def test_log_when_key_name_is_secret_then_value_redacted_whatever_it_is(capsys):
    configure_logging()

    get_logger("desk.test").info(
        "config",
        api_key="k-1",
        headers={"Authorization": "Bearer abc", "Accept": "json"},
        db_password=12345,
        kraken={"privateKey": "x", "private_key": "y", "passphrase": ["p"], "exchange": "kraken"},
    )

    [line] = stderr_lines(capsys)
    assert line["api_key"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert line["db_password"] == REDACTED
    # `privateKey` has no underscore, so only the listed spellings are caught — as documented.
    assert line["kraken"] == {"privateKey": "x", "private_key": REDACTED, "passphrase": REDACTED, "exchange": "kraken"}


def test_log_when_env_value_short_or_env_name_not_secret_then_value_kept(monkeypatch, capsys):
    monkeypatch.setenv("DESK_SHORT_TOKEN", "abc12")  # below the 6-character floor
    monkeypatch.setenv("DESK_MODE", "paper-trading-mode")  # not a secret-looking name
    configure_logging()

    get_logger("desk.test").info("state", a="abc12", b="paper-trading-mode")

    [line] = stderr_lines(capsys)
    assert (line["a"], line["b"]) == ("abc12", "paper-trading-mode")


def test_log_when_url_carries_credentials_then_they_are_scrubbed(capsys):
    configure_logging()

    get_logger("desk.test").info("posting", url="https://bob:hunter2@collector.example:8443/in?token=tok123&x=1")

    [line] = stderr_lines(capsys)
    assert line["url"] == f"https://{REDACTED}@collector.example:8443/in?token={REDACTED}&x=1"


def test_log_when_event_logged_then_line_is_json_with_utc_timestamp_level_logger_and_event(capsys):
    configure_logging()

    get_logger("desk.engine").info("candle_closed", symbol="BTC/USD", close=101.5)

    [line] = stderr_lines(capsys)
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert (line["level"], line["logger"], line["event"]) == ("info", "desk.engine", "candle_closed")
    assert (line["symbol"], line["close"]) == ("BTC/USD", 101.5)
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == UTC.utcoffset(None)


def test_log_when_below_configured_level_then_suppressed(capsys):
    configure_logging("WARNING")
    log = get_logger("desk.test")

    log.info("chatter")
    log.warning("disk_nearly_full")

    assert [line["event"] for line in stderr_lines(capsys)] == ["disk_nearly_full"]


def test_configure_logging_when_called_twice_then_each_event_written_once(capsys):
    configure_logging()
    configure_logging()

    get_logger("desk.test").info("once")

    assert [line["event"] for line in stderr_lines(capsys)] == ["once"]


def test_configure_logging_when_level_unknown_then_raises_value_error():
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging("LOUD")


def test_redact_when_nested_structure_then_returns_redacted_copy_and_leaves_input_intact(canary):
    original = {"token": "t", "items": [f"x{canary}y", 3, None], "pair": (canary, 1.5), "note": "fine"}

    redacted = redact(original)

    assert redacted == {"token": REDACTED, "items": [f"x{REDACTED}y", 3, None], "pair": (REDACTED, 1.5), "note": "fine"}
    assert original["token"] == "t" and original["items"][0] == f"x{canary}y"


def test_redact_when_value_is_exception_message_then_secret_replaced(canary):
    exc = ValueError(f"bad signature for {canary}")

    assert redact(str(exc)) == f"bad signature for {REDACTED}"


def test_redact_when_env_changes_after_configure_then_new_secret_also_redacted(monkeypatch):
    configure_logging()
    monkeypatch.setenv("DESK_ROTATED_SECRET", "rotated-value-9876")

    assert redact("now rotated-value-9876") == f"now {REDACTED}"
