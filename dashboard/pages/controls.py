"""Controls page: operator commands for the running daemon, and what became of them.

Every button queues one command in the store's inbox (pause_worker,
resume_worker, halt, resume, flatten, reset_account); the daemon applies it
between loop iterations and marks it applied or rejected with a detail, which
the table at the bottom shows. Nothing here acts on the market directly.

All actions need the operator password. Locked, the buttons are disabled, and
each handler checks the unlock again before writing, because a disabled button
only binds a well-behaved browser. Flatten and reset ask for a confirmation;
reset is refused outright when the config says live mode.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.auth import is_unlocked, operator_unlocked
from dashboard.operator_actions import flash, show_flashes, submit_command
from dashboard.store_access import StoreLocation, database_display, location_or_stop, recent_commands
from desk.config import DeskConfig, load_config
from desk.config_versions import redact_text
from desk.core.errors import ConfigError, DeskError

RESET_CONFIRMATION = "RESET"
_FLATTEN_CONFIRM = "controls.flatten_confirm"
_RESET_CONFIRM = "controls.reset_confirm"
_WORKER_PICK = "controls.worker"
COMMANDS_SHOWN = 50
COMMANDS_REFRESH_S = 3.0


def _queue(
    target: StoreLocation, command: str, payload: dict[str, Any], confirmation: tuple[str, object] | None = None
) -> None:
    """Button callback: queue one command if the session is unlocked and the action confirmed.

    `confirmation` is (widget key, the value that confirms). The checks repeat
    what the disabled buttons show, because a callback can be triggered by a
    crafted message, and the config may have changed since the page was drawn.
    """
    if not is_unlocked():
        flash("error", "Unlock operator actions first; nothing was sent.")
        return
    if confirmation is not None:
        key, confirming_value = confirmation
        if st.session_state.get(key) != confirming_value:
            flash("warning", f"{command}: confirm it first; nothing was sent.")
            return
        # One confirmation, one command: a second click must be confirmed again.
        st.session_state[key] = "" if isinstance(confirming_value, str) else False
    if command == "reset_account" and not _is_paper(target):
        flash("error", "reset_account is only for a paper account; nothing was sent.")
        return
    try:
        command_id = submit_command(target.database_url, target.journal_dir, command, payload)
    except (DeskError, ValueError, OSError) as exc:
        flash("error", f"{command} was not queued: {exc}")
        return
    what = f"{command} {payload['worker']}" if "worker" in payload else command
    flash("success", f"Queued command #{command_id}: {what}. The daemon applies it between loop iterations.")


def _is_paper(target: StoreLocation) -> bool:
    """Read the config again: paper mode is what makes a reset harmless."""
    if target.config_path is None:
        return False
    try:
        return load_config(target.config_path).settings.mode == "paper"
    except ConfigError:
        return False


def _load(target: StoreLocation) -> DeskConfig | None:
    if target.config_path is None:
        return None
    try:
        return load_config(target.config_path)
    except ConfigError as exc:
        st.warning(f"The config cannot be read, so worker controls are unavailable: {redact_text(str(exc))}")
        return None


def _trading_section(target: StoreLocation, unlocked: bool) -> None:
    st.subheader("Trading")
    st.caption("Halt: no new entries (open positions keep their stops); survives restarts. Resume is the only way out.")
    halt, resume = st.columns(2)
    halt.button("Halt trading", key="controls.halt", disabled=not unlocked, on_click=_queue, args=(target, "halt", {}))
    resume.button(
        "Resume trading", key="controls.resume", disabled=not unlocked, on_click=_queue, args=(target, "resume", {})
    )


def _workers_section(target: StoreLocation, config: DeskConfig | None, unlocked: bool) -> None:
    st.subheader("Workers")
    if config is None:
        st.caption("Worker controls need the config file (the control room was started without one).")
        return
    names = [worker.name for worker in config.workers]
    worker = st.selectbox("Worker", names, key=_WORKER_PICK)
    payload = {"worker": worker or ""}
    pause, resume = st.columns(2)
    pause.button(
        "Pause worker",
        key="controls.pause_worker",
        disabled=not unlocked or not worker,
        on_click=_queue,
        args=(target, "pause_worker", payload),
    )
    resume.button(
        "Resume worker",
        key="controls.resume_worker",
        disabled=not unlocked or not worker,
        on_click=_queue,
        args=(target, "resume_worker", payload),
    )


def _positions_section(target: StoreLocation, unlocked: bool) -> None:
    st.subheader("Positions")
    confirmed = st.checkbox("Close every open position at market", key=_FLATTEN_CONFIRM, disabled=not unlocked)
    st.button(
        "Flatten all positions",
        key="controls.flatten",
        disabled=not unlocked or not confirmed,
        on_click=_queue,
        args=(target, "flatten", {}, (_FLATTEN_CONFIRM, True)),
    )


def _account_section(target: StoreLocation, config: DeskConfig | None, unlocked: bool) -> None:
    st.subheader("Paper account")
    if config is None or config.settings.mode != "paper":
        # A reset wipes positions and cash in the daemon's books; against a live exchange account that is a lie.
        why = "the config says live mode" if config is not None else "the mode is unknown without a config"
        st.caption(f"Reset is only for paper trading, and {why}.")
        st.button("Reset paper account", key="controls.reset_account", disabled=True)
        return
    st.caption(
        f"Closes every position and starts over with {config.settings.starting_cash:,.2f} "
        f"{config.settings.quote_currency} of cash. The journal keeps the history."
    )
    typed = st.text_input(
        f"Type {RESET_CONFIRMATION} to confirm", key=_RESET_CONFIRM, disabled=not unlocked, max_chars=16
    )
    st.button(
        "Reset paper account",
        key="controls.reset_account",
        disabled=not unlocked or typed != RESET_CONFIRMATION,
        on_click=_queue,
        args=(target, "reset_account", {}, (_RESET_CONFIRM, RESET_CONFIRMATION)),
    )


def _command_target(payload_text: Any) -> str:
    """Summarise a payload for the table: the worker or config version, never the whole diff."""
    try:
        payload = json.loads(payload_text) if isinstance(payload_text, str) else {}
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    if payload.get("worker"):
        return f"worker {payload['worker']}"
    if "version" in payload:
        return f"config version {payload['version']}"
    return ""


# Re-drawn on its own every few seconds, so a pending command turns applied without a click.
@st.fragment(run_every=COMMANDS_REFRESH_S)
def _commands_table() -> None:
    st.subheader("Recent commands")
    try:
        frame = recent_commands(COMMANDS_SHOWN)
    except DeskError as exc:
        st.warning(f"The command inbox cannot be read: {redact_text(str(exc))}")
        return
    if frame.empty:
        st.caption("No commands yet.")
        return
    shown = pd.DataFrame(
        {
            "#": frame["command_id"],
            "queued (UTC)": frame["created_time"],
            "command": frame["command"],
            "target": frame["payload"].map(_command_target),
            "status": frame["status"],
            "detail": frame["detail"].map(lambda detail: redact_text(str(detail or ""))),
        }
    )
    st.dataframe(shown, hide_index=True)
    st.caption("pending: waiting for the daemon's next loop · applied / rejected: the daemon's answer in detail.")
    st.button("Refresh", key="controls.refresh")


def main() -> None:
    """Render the page."""
    st.title("Controls")
    unlocked = operator_unlocked()
    show_flashes()
    target = location_or_stop()
    st.caption(f"Commands go to the inbox of `{database_display(target.database_url)}`.")
    config = _load(target)
    if not unlocked:
        st.caption("Read-only: unlock operator actions in the sidebar to use these controls.")
    _trading_section(target, unlocked)
    _workers_section(target, config, unlocked)
    _positions_section(target, unlocked)
    _account_section(target, config, unlocked)
    _commands_table()


main()
