"""The Controls page, run with AppTest: commands land in a real store's inbox under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from desk.config import parse_config_text
from desk.services.store.store import EventStore
from tests.dashboard.operator_pages import (
    PAGES,
    TIMEOUT_S,
    Desk,
    assert_no_canary,
    assert_no_exception,
    config_text,
    desk_fixture,  # noqa: F401  (the `desk` fixture)
    open_page,
    unlock,
)

PAGE = "controls.py"
ACTION_KEYS = (
    "controls.halt",
    "controls.resume",
    "controls.pause_worker",
    "controls.resume_worker",
    "controls.flatten",
    "controls.reset_account",
)


def _queued(desk: Desk) -> list[tuple[str, dict, str]]:
    return [(c["command"], json.loads(c["payload"]), c["status"]) for c in desk.commands()]


def test_render_when_locked_then_every_action_disabled_and_inbox_untouched(desk: Desk):
    at = open_page(PAGE)

    assert_no_exception(at)
    assert all(at.button(key=key).disabled for key in ACTION_KEYS)
    assert at.checkbox(key="controls.flatten_confirm").disabled
    assert at.text_input(key="controls.reset_confirm").disabled
    assert desk.commands() == []


def test_halt_and_resume_when_unlocked_then_commands_pending_in_inbox(desk: Desk):
    at = unlock(open_page(PAGE))

    at.button(key="controls.halt").click().run()
    at.button(key="controls.resume").click().run()

    assert_no_exception(at)
    assert _queued(desk) == [("halt", {}, "pending"), ("resume", {}, "pending")]
    assert any("Queued command #2: resume" in s.value for s in at.main.success)


def test_pause_and_resume_worker_when_worker_selected_then_payload_names_it(desk: Desk):
    at = unlock(open_page(PAGE))
    workers = [w.name for w in parse_config_text(desk.config_path.read_text()).workers]
    assert at.selectbox(key="controls.worker").options == workers

    at.selectbox(key="controls.worker").set_value("eth-rsi").run()
    at.button(key="controls.pause_worker").click().run()
    at.button(key="controls.resume_worker").click().run()

    assert _queued(desk) == [
        ("pause_worker", {"worker": "eth-rsi"}, "pending"),
        ("resume_worker", {"worker": "eth-rsi"}, "pending"),
    ]


def test_flatten_when_confirmed_then_queued_once_and_confirmation_cleared(desk: Desk):
    at = unlock(open_page(PAGE))
    assert at.button(key="controls.flatten").disabled  # not confirmed yet

    at.checkbox(key="controls.flatten_confirm").check().run()
    at.button(key="controls.flatten").click().run()

    assert _queued(desk) == [("flatten", {}, "pending")]
    assert at.checkbox(key="controls.flatten_confirm").value is False
    assert at.button(key="controls.flatten").disabled  # a second flatten needs a second confirmation


def test_reset_account_when_typed_confirmation_then_queued(desk: Desk):
    at = unlock(open_page(PAGE))

    at.text_input(key="controls.reset_confirm").input("reset").run()
    assert at.button(key="controls.reset_account").disabled  # the exact word, in capitals
    at.text_input(key="controls.reset_confirm").input("RESET").run()
    at.button(key="controls.reset_account").click().run()

    assert _queued(desk) == [("reset_account", {}, "pending")]
    assert at.text_input(key="controls.reset_confirm").value == ""


def test_reset_account_when_live_mode_then_disabled_even_unlocked(desk: Desk, tmp_path: Path):
    desk.config_path.write_text(config_text(tmp_path, {"settings": {"mode": "live"}}))
    at = unlock(open_page(PAGE))

    assert at.button(key="controls.reset_account").disabled
    assert not [t for t in at.text_input if t.key == "controls.reset_confirm"]
    assert not at.button(key="controls.halt").disabled  # the other controls still work in live mode


def test_commands_table_when_daemon_answered_then_status_and_detail_listed(desk: Desk):
    at = unlock(open_page(PAGE))
    at.button(key="controls.halt").click().run()
    at.button(key="controls.pause_worker").click().run()
    store = EventStore(parse_config_text(desk.config_path.read_text()).store, desk.config_path.parent)
    try:
        store.mark_command(1, "applied", "trading is HALTED", 10)
        store.mark_command(2, "rejected", "unknown worker 'ghost'", 11)
    finally:
        store.close()

    at.button(key="controls.refresh").click().run()

    table = at.main.dataframe[0].value
    rows = {row["#"]: row for row in table.to_dict("records")}
    assert (rows[1]["command"], rows[1]["status"], rows[1]["detail"]) == ("halt", "applied", "trading is HALTED")
    assert (rows[2]["status"], rows[2]["target"]) == ("rejected", "worker btc-momentum")
    assert rows[2]["detail"] == "unknown worker 'ghost'"


def test_unlock_then_lock_when_clicked_then_actions_disabled_again(desk: Desk):
    at = unlock(open_page(PAGE))
    assert not at.button(key="controls.halt").disabled

    at.sidebar.button(key="desk_operator_lock").click().run()

    assert at.button(key="controls.halt").disabled
    assert desk.commands() == []


def test_render_when_secrets_in_env_then_password_and_api_secret_never_rendered(desk: Desk):
    at = open_page(PAGE)
    assert_no_canary(at)
    at = unlock(at)
    at.button(key="controls.halt").click().run()
    at.checkbox(key="controls.flatten_confirm").check().run()
    at.button(key="controls.flatten").click().run()
    assert_no_canary(at)
    assert "canary-pw-1234567" not in json.dumps(desk.commands())


def test_render_when_no_password_configured_then_read_only(desk: Desk, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DESK_DASHBOARD_PASSWORD")
    at = open_page(PAGE)

    assert "DESK_DASHBOARD_PASSWORD" in "\n".join(i.value for i in at.sidebar.info)
    assert all(at.button(key=key).disabled for key in ACTION_KEYS)
    assert desk.commands() == []


@pytest.mark.parametrize("page", ["controls.py", "config_editor.py"])
def test_render_when_started_on_bare_store_dir_then_no_error_and_nothing_writable(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DESK_STORE_DIR", str(tmp_path))  # no config.yaml inside: a backtest's output, say
    monkeypatch.delenv("DESK_CONFIG", raising=False)
    monkeypatch.delenv("DESK_DASHBOARD_PASSWORD", raising=False)

    at = AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT_S).run()

    assert_no_exception(at)
    assert not at.error
    assert all(button.disabled for button in at.main.button if button.key != "controls.refresh")
    assert not (tmp_path / "desk.db").exists()  # reading never creates the store


def test_click_when_session_locked_after_render_then_handler_refuses_and_nothing_queued(desk: Desk):
    at = unlock(open_page(PAGE))
    at.checkbox(key="controls.flatten_confirm").check().run()
    at.session_state["desk_operator_unlocked"] = False  # as if the unlock expired while the page was open

    at.button(key="controls.flatten").click().run()  # drawn enabled on the last run; the handler decides

    assert desk.commands() == []
    assert "nothing was sent" in "\n".join(e.value for e in at.main.error)


def test_reset_account_when_config_turned_live_after_render_then_refused(desk: Desk, tmp_path: Path):
    at = unlock(open_page(PAGE))
    at.text_input(key="controls.reset_confirm").input("RESET").run()
    desk.config_path.write_text(config_text(tmp_path, {"settings": {"mode": "live"}}))

    at.button(key="controls.reset_account").click().run()

    assert desk.commands() == []
    assert "only for a paper account" in "\n".join(e.value for e in at.main.error)
