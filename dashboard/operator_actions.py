"""The control room's writing side: queue operator commands, carry messages across a rerun.

The dashboard never touches the journal. Commands go into the store's inbox
table through `EventStore.submit_command`, which needs only the database, so it
works while the daemon holds the journal's writer lock; the daemon applies them
between loop iterations and marks each row applied or rejected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import streamlit as st

from desk.config import StoreConfig
from desk.config_versions import redact_text
from desk.services.store.store import EventStore

__all__ = [
    "COMMAND_NAMES",
    "Flash",
    "flash",
    "show_flashes",
    "submit_command",
    "wall_ms",
]

# What the daemon applies (desk/engines/trading.py handle_command); anything else it rejects.
COMMAND_NAMES = (
    "halt",
    "resume",
    "flatten",
    "pause_worker",
    "resume_worker",
    "reset_account",
    "reload_config",
)

_FLASHES = "desk_operator_flashes"


@dataclass(frozen=True, slots=True)
class Flash:
    """A message to show once at the top of the next run (an action's outcome survives `st.rerun`)."""

    level: Literal["success", "info", "warning", "error"]
    text: str


def wall_ms() -> int:
    """Return the wall clock in epoch milliseconds, the inbox's `created_wall_ms`."""
    return time.time_ns() // 1_000_000


def submit_command(database_url: str, journal_dir: Path, command: str, payload: dict[str, Any]) -> int:
    """Queue one command in the inbox of the store at `database_url`; return its command_id.

    No `open()`: that would take the journal's writer lock, which the running daemon holds.
    """
    if command not in COMMAND_NAMES:
        raise ValueError(f"unknown command {command!r}")
    # Absolute paths, so the base directory EventStore resolves against does not matter.
    store = EventStore(StoreConfig(journal_dir=str(journal_dir), database_url=database_url), journal_dir.parent)
    try:
        return store.submit_command(command, payload, wall_ms())
    finally:
        store.close()


def flash(level: Literal["success", "info", "warning", "error"], text: str) -> None:
    """Queue a message for `show_flashes`; redacted, since outcomes may quote a database error."""
    st.session_state.setdefault(_FLASHES, []).append(Flash(level, redact_text(text)))


def show_flashes() -> None:
    """Show and forget the queued messages."""
    for message in st.session_state.pop(_FLASHES, []):
        getattr(st, message.level)(message.text)
