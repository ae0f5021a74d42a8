"""The Config page, run with AppTest on a real config file and store under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desk.config import parse_config_text
from desk.config_versions import HISTORY_DIR
from tests.conftest import DEFAULT_CONFIG
from tests.dashboard.operator_pages import (
    Desk,
    assert_no_canary,
    assert_no_exception,
    config_text,
    desk_fixture,  # noqa: F401  (the `desk` fixture)
    open_page,
    page_text,
    rendered_text,
    unlock,
    widget,
)

PAGE = "config_editor.py"


def _history_files(desk: Desk) -> list[str]:
    history = desk.config_path.parent / HISTORY_DIR
    return sorted(p.name for p in history.glob("config.*.yaml")) if history.is_dir() else []


def _dir_listing(desk: Desk) -> list[str]:
    return sorted(p.name for p in desk.config_path.parent.iterdir())


def test_render_when_config_loaded_then_shows_file_and_one_expander_per_worker(desk: Desk):
    at = open_page(PAGE)

    assert_no_exception(at)
    assert str(desk.config_path) in page_text(at)
    assert len(at.main.expander) == len(parse_config_text(desk.config_path.read_text()).workers)
    assert widget(at, "text_area", ".raw").value == desk.config_path.read_text()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda text: text.replace("workers:", "workers: [oops", 1), "invalid YAML"),
        (
            lambda text: text.replace("  stop_pct: 0.02", "  stop_pct: 0.02\n  stop_loss: 0.02", 1),
            "risk.stop_loss: unknown key",
        ),
        (lambda text: text.replace("  stop_pct: 0.02", "  stop_pct: wide", 1), "risk.stop_pct:"),
    ],
    ids=["invalid-yaml", "unknown-key", "bad-value"],
)
def test_edit_raw_when_draft_invalid_then_error_with_key_path_and_nothing_saved(desk: Desk, edit, expected: str):
    before = desk.config_path.read_bytes()
    at = unlock(open_page(PAGE))

    widget(at, "text_area", ".raw").input(edit(before.decode())).run()

    assert_no_exception(at)
    errors = "\n".join(e.value for e in at.main.error)
    assert expected in errors
    assert not [b for b in at.main.button if (b.key or "").endswith("rawtab.save")]  # no Save for an invalid draft
    assert desk.config_path.read_bytes() == before
    assert _history_files(desk) == [] and desk.commands() == []


def test_edit_form_when_param_value_bad_then_error_names_worker_param_path_and_nothing_saved(desk: Desk):
    before = desk.config_path.read_bytes()
    at = unlock(open_page(PAGE))

    widget(at, "text_area", ".w3.params").input("{fast: 48, slow: many, signal: 36, atr_mult: 6.0}").run()

    errors = "\n".join(e.value for e in at.main.error)
    assert "workers[3].params.slow:" in errors and "eth-macd" in errors
    assert desk.config_path.read_bytes() == before
    assert desk.commands() == []


def test_edit_form_when_params_not_yaml_then_error_names_the_field(desk: Desk):
    at = unlock(open_page(PAGE))

    widget(at, "text_area", ".w0.params").input("{lookback: [60").run()

    assert "workers[0].params: invalid YAML" in "\n".join(e.value for e in at.main.error)


def test_save_raw_when_valid_and_unlocked_then_replaced_atomically_backed_up_and_reload_queued(desk: Desk):
    original = desk.config_path.read_text()
    new_text = original.replace("  stop_pct: 0.02", "  stop_pct: 0.03", 1).replace("mode: paper", "mode: live")
    at = unlock(open_page(PAGE))

    widget(at, "text_area", ".raw").input(new_text).run()
    shown = page_text(at)
    assert "+  stop_pct: 0.03" in shown  # the diff preview
    assert "risk.stop_pct" in "\n".join(i.value for i in at.main.info)  # applied live
    assert "settings.mode" in "\n".join(w.value for w in at.main.warning)  # needs a restart
    widget(at, "button", "rawtab.save").click().run()

    assert_no_exception(at)
    assert desk.config_path.read_text() == new_text
    assert _history_files(desk) == ["config.1.yaml", "config.2.yaml"]
    assert (desk.config_path.parent / HISTORY_DIR / "config.1.yaml").read_text() == original
    assert [name for name in _dir_listing(desk) if name not in (HISTORY_DIR, "config.yaml")] == []  # no temp files
    (command,) = desk.commands()
    payload = json.loads(command["payload"])
    assert (command["command"], command["status"]) == ("reload_config", "pending")
    assert payload["path"] == str(desk.config_path.resolve()) and payload["version"] == 2
    assert "+  stop_pct: 0.03" in payload["diff"]
    assert "version 2" in "\n".join(s.value for s in at.main.success)
    assert widget(at, "text_area", ".raw").value == new_text  # the editor starts over from the saved file


def test_save_form_when_worker_disabled_and_weight_changed_then_only_workers_block_rewritten(desk: Desk):
    original = desk.config_path.read_text()
    at = unlock(open_page(PAGE))

    widget(at, "checkbox", ".w2.enabled").uncheck().run()
    widget(at, "number_input", ".w2.weight").set_value(0.5).run()
    assert "workers[eth-rsi].enabled" in "\n".join(i.value for i in at.main.info)
    widget(at, "button", "form.save").click().run()

    saved = desk.config_path.read_text()
    head = original.split("workers:")[0]
    assert saved.startswith(head)  # comment and every other section byte for byte
    worker = parse_config_text(saved).worker("eth-rsi")
    assert (worker.enabled, worker.weight) == (False, 0.5)
    assert [c["command"] for c in desk.commands()] == ["reload_config"]


def test_save_form_when_worker_added_and_one_removed_then_saved_with_the_new_worker(desk: Desk):
    at = unlock(open_page(PAGE))

    widget(at, "button", ".add").click().run()
    widget(at, "text_input", ".new0.name").input("sol-rsi").run()
    widget(at, "selectbox", ".new0.sym").set_value("SOL/USD").run()
    widget(at, "selectbox", ".new0.strategy").set_value("rsi").run()
    widget(at, "text_area", ".new0.params").input('{"period": 14}').run()
    widget(at, "checkbox", ".w4.remove").check().run()
    widget(at, "button", "form.save").click().run()

    assert_no_exception(at)
    config = parse_config_text(desk.config_path.read_text())
    names = [w.name for w in config.workers]
    assert "sol-rsi" in names and "sol-bollinger" not in names
    assert config.worker("sol-rsi").params == {"period": 14}


def test_save_when_locked_then_save_disabled_and_nothing_written(desk: Desk):
    before = desk.config_path.read_bytes()
    at = open_page(PAGE)  # not unlocked

    widget(at, "text_area", ".raw").input(before.decode().replace("stop_pct: 0.02", "stop_pct: 0.03", 1)).run()

    save = widget(at, "button", "rawtab.save")
    assert save.disabled
    assert desk.config_path.read_bytes() == before
    assert _history_files(desk) == [] and desk.commands() == []


def test_add_worker_when_locked_then_disabled_like_the_controls_and_enabled_once_unlocked(desk: Desk):
    at = open_page(PAGE)  # not unlocked

    assert widget(at, "button", ".add").disabled
    assert "Adding a worker needs the operator password (sidebar)." in page_text(at)

    unlock(at)
    assert not widget(at, "button", ".add").disabled
    assert "Adding a worker needs the operator password (sidebar)." not in page_text(at)
    widget(at, "button", ".add").click().run()
    assert widget(at, "text_input", ".new0.name").value == ""
    assert desk.commands() == []


def test_add_worker_when_session_locked_after_render_then_handler_adds_no_slot(desk: Desk):
    at = unlock(open_page(PAGE))
    at.session_state["desk_operator_unlocked"] = False  # as if the unlock expired while the page was open

    widget(at, "button", ".add").click().run()  # drawn enabled on the last run; the handler decides

    assert not [w for w in at.main.text_input if (w.key or "").endswith(".new0.name")]
    assert "Unlock operator actions to add a worker." in "\n".join(e.value for e in at.main.error)


def test_render_when_no_password_configured_then_read_only_and_told_how_to_enable(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("DESK_DASHBOARD_PASSWORD")
    at = open_page(PAGE)

    assert "DESK_DASHBOARD_PASSWORD" in "\n".join(i.value for i in at.sidebar.info)
    assert not at.sidebar.text_input  # nothing to type a password into
    widget(at, "text_area", ".raw").input(desk.config_path.read_text() + "\n# edited\n").run()
    assert widget(at, "button", "rawtab.save").disabled
    assert widget(at, "button", ".add").disabled


def test_unlock_when_password_wrong_then_stays_locked_without_echoing_it(desk: Desk):
    at = unlock(open_page(PAGE), password="not-the-password-42")

    assert "Wrong password." in [e.value for e in at.sidebar.error]
    assert "not-the-password-42" not in rendered_text(at)  # the field was wiped, in the browser too
    assert at.sidebar.text_input(key="desk_operator_password").value == ""
    assert widget(at, "text_area", ".raw").value  # still rendered, read-only for actions


def test_rollback_when_unlocked_then_earlier_version_restored_and_reload_queued(desk: Desk):
    original = desk.config_path.read_text()
    at = unlock(open_page(PAGE))
    widget(at, "text_area", ".raw").input(original.replace("stop_pct: 0.02", "stop_pct: 0.03", 1)).run()
    widget(at, "button", "rawtab.save").click().run()

    at.selectbox(key="config_versions.pick").set_value(1).run()
    at.button(key="config_versions.rollback").click().run()

    assert_no_exception(at)
    assert desk.config_path.read_text() == original
    assert _history_files(desk) == ["config.1.yaml", "config.2.yaml", "config.3.yaml"]
    versions = [json.loads(c["payload"])["version"] for c in desk.commands()]
    assert versions == [2, 3]


def test_rollback_when_locked_then_button_disabled_and_nothing_restored(desk: Desk, tmp_path: Path):
    from desk.config_versions import ConfigHistory

    ConfigHistory(desk.config_path).save(config_text(tmp_path, {"risk": {"stop_pct": 0.03}}))
    before = desk.config_path.read_bytes()
    at = open_page(PAGE)

    at.selectbox(key="config_versions.pick").set_value(1).run()

    assert at.button(key="config_versions.rollback").disabled
    assert desk.config_path.read_bytes() == before and desk.commands() == []


def test_render_when_secrets_in_env_then_password_and_api_secret_never_rendered(desk: Desk):
    at = open_page(PAGE)
    assert_no_canary(at)
    at = unlock(at)
    assert_no_canary(at)
    # A draft that quotes the API secret: the diff preview and errors must redact it.
    text = desk.config_path.read_text().replace("mode: paper", "mode: paper\n  exchange_note: canary-zz-9876543210")
    widget(at, "text_area", ".raw").input(text).run()
    errors = [e.value for e in at.main.error]
    assert errors and "settings.exchange_note: unknown key" in errors[0]
    widget(at, "text_area", ".raw").input(desk.config_path.read_text() + "# canary-zz-9876543210\n").run()
    # The raw text area holds what the operator typed (it is their input); every rendered output must not.
    outputs = "\n".join([*(c.value for c in at.main.code), *(e.value for e in at.main.error)])
    assert "canary-zz-9876543210" not in outputs and "***" in outputs


def test_render_when_file_holds_a_secret_value_then_shown_redacted_and_raw_editing_off(desk: Desk, tmp_path: Path):
    desk.config_path.write_text(config_text(tmp_path, {"settings": {"exchange": "canary-zz-9876543210"}}))
    at = unlock(open_page(PAGE))

    assert_no_exception(at)
    assert not [t for t in at.main.text_area if (t.key or "").endswith(".raw")]
    assert "secret-looking value" in "\n".join(w.value for w in at.main.warning)
    widget(at, "checkbox", ".w0.enabled").uncheck().run()  # the form still works, and its diff is redacted
    assert "workers[btc-momentum].enabled" in "\n".join(i.value for i in at.main.info)
    assert_no_canary(at)


def test_save_when_file_changed_on_disk_while_editing_then_draft_dropped_with_warning_and_file_kept(
    desk: Desk, tmp_path: Path
):
    at = unlock(open_page(PAGE))
    widget(at, "text_area", ".raw").input(desk.config_path.read_text().replace("stop_pct: 0.02", "stop_pct: 0.03", 1))
    hand_edit = config_text(tmp_path, {"risk": {"stop_pct": 0.035}})
    desk.config_path.write_text(hand_edit)  # someone else saves while the operator types

    at.run()

    assert "changed on disk" in "\n".join(w.value for w in at.main.warning)
    assert widget(at, "text_area", ".raw").value == hand_edit
    assert desk.config_path.read_text() == hand_edit and desk.commands() == []


def test_save_form_when_shipped_config_then_every_comment_outside_workers_survives(desk: Desk, tmp_path: Path):
    shipped = (
        DEFAULT_CONFIG.read_text()
        .replace("journal_dir: logs/journal", f"journal_dir: {tmp_path}/store/journal")
        .replace("sqlite:///logs/desk.db", f"sqlite:///{tmp_path}/store/desk.db")
    )
    desk.config_path.write_text(shipped)
    at = unlock(open_page(PAGE))
    assert widget(at, "text_area", ".raw").value == shipped  # prose about secrets does not lock the raw editor

    widget(at, "text_area", ".w1.risk").input("{trailing_stop_pct: 0.02}").run()
    widget(at, "button", "form.save").click().run()

    saved = desk.config_path.read_text()
    assert saved.split("workers:")[0] == shipped.split("workers:")[0]
    assert parse_config_text(saved).worker("btc-breakout").risk.trailing_stop_pct == 0.02
    changed = [line for line in saved.splitlines() if line not in shipped.splitlines()]
    assert changed == ["    risk: {trailing_stop_pct: 0.02}"]


def test_save_when_disk_write_fails_then_error_shown_file_intact_and_nothing_queued(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
):
    before = desk.config_path.read_bytes()
    at = unlock(open_page(PAGE))
    widget(at, "text_area", ".raw").input(before.decode().replace("stop_pct: 0.02", "stop_pct: 0.03", 1)).run()

    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("desk.config_versions.os.replace", disk_full)
    widget(at, "button", "rawtab.save").click().run()

    assert_no_exception(at)
    assert "No space left on device" in "\n".join(e.value for e in at.main.error)
    assert desk.config_path.read_bytes() == before and desk.commands() == []
