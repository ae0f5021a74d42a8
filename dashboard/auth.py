"""Operator unlock for the control room: one shared password from the environment.

The password comes from `DESK_DASHBOARD_PASSWORD` in the environment that
starts Streamlit. Without it the control room is read-only. With it, an
operator types the password into a form in the sidebar; a match (compared in
constant time) sets a boolean in the session, nothing else. The typed value is
checked inside the form's callback and wiped from the widget state there, so it
is never rendered back, logged, kept in session state or echoed in an error.

Every action a page offers must check `is_unlocked()` again in its own handler:
a disabled button is a hint to the browser, not a guarantee against a crafted
websocket message.
"""

from __future__ import annotations

import hmac
import os
import time

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

__all__ = [
    "PASSWORD_ENV",
    "UNLOCK_TTL_S",
    "is_unlocked",
    "lock",
    "operator_unlocked",
    "password_configured",
]

PASSWORD_ENV = "DESK_DASHBOARD_PASSWORD"
# An unattended, unlocked browser tab should not stay an open door for the day.
UNLOCK_TTL_S = 30 * 60
# Slows guessing down from one session; brute force across many sessions is what binding to
# 127.0.0.1 (.streamlit/config.toml) is for.
FAILED_UNLOCK_DELAY_S = 1.0

_UNLOCKED = "desk_operator_unlocked"  # bool
_UNLOCKED_AT = "desk_operator_unlocked_at"  # time.monotonic() of the unlock, for the TTL
_FAILED = "desk_operator_unlock_failed"  # bool: show "wrong password" once
_PASSWORD_WIDGET = "desk_operator_password"


def password_configured() -> bool:
    """Return True when the environment sets an operator password."""
    return bool(os.environ.get(PASSWORD_ENV))


def _password_matches(candidate: str) -> bool:
    expected = os.environ.get(PASSWORD_ENV, "")
    if not expected:
        return False
    # compare_digest on bytes: constant time in the length of the expected value, any characters.
    return hmac.compare_digest(candidate.encode("utf-8"), expected.encode("utf-8"))


def is_unlocked() -> bool:
    """Return True when this session has unlocked operator actions (and the unlock has not expired)."""
    if not password_configured() or not st.session_state.get(_UNLOCKED, False):
        return False
    unlocked_at = st.session_state.get(_UNLOCKED_AT, 0.0)
    if time.monotonic() - unlocked_at > UNLOCK_TTL_S:
        lock()
        return False
    return True


def lock() -> None:
    """Forget this session's unlock."""
    st.session_state[_UNLOCKED] = False
    st.session_state.pop(_UNLOCKED_AT, None)


def _on_unlock() -> None:
    """Check the typed password, then wipe it from the widget before the page renders again."""
    candidate = st.session_state.get(_PASSWORD_WIDGET, "") or ""
    # Runs before the widget is drawn again, so overwriting its state is allowed and the browser gets "".
    st.session_state[_PASSWORD_WIDGET] = ""
    if _password_matches(candidate):
        st.session_state[_UNLOCKED] = True
        st.session_state[_UNLOCKED_AT] = time.monotonic()
        st.session_state[_FAILED] = False
    else:
        lock()
        st.session_state[_FAILED] = True
        time.sleep(FAILED_UNLOCK_DELAY_S)


def operator_unlocked(container: DeltaGenerator | None = None) -> bool:
    """Draw the unlock form (or the lock button) and return whether actions are allowed.

    Draws into the sidebar unless `container` is given. With no password in
    the environment it explains how to enable actions and returns False.
    """
    where = container if container is not None else st.sidebar
    if not password_configured():
        where.info(
            f"Read-only mode. To enable operator actions, set {PASSWORD_ENV} in the environment "
            "that starts the control room, then restart it."
        )
        return False
    if is_unlocked():
        where.success("Operator actions unlocked.")
        where.button("Lock", key="desk_operator_lock", on_click=lock)
        return True
    with where.form("desk_operator_unlock", clear_on_submit=True):
        st.text_input("Operator password", type="password", key=_PASSWORD_WIDGET)
        st.form_submit_button("Unlock", on_click=_on_unlock)
    if st.session_state.get(_FAILED, False):
        where.error("Wrong password.")
    else:
        where.caption("Actions are disabled until the operator password is entered.")
    return False
