"""Logs: the journal's newest records, filtered, optionally refreshing every two seconds.

The tail is read from the end of the newest journal files (never the whole
journal), so it stays quick on a journal of millions of lines. Levels are
derived from the event type: errors are worker faults and broker rejections,
warnings are risk denials and risk or worker state changes, the rest is info.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard import common
from desk.services.store.queries import EVENT_TYPE_NAMES, LOG_LEVELS

REFRESH_EVERY_S = 2
MAX_LINES = 5000
LEVEL_MARKS = {"error": "🔴 error", "warning": "🟠 warning", "info": "info"}


@dataclass(frozen=True, slots=True)
class LogFilters:
    """What the operator asked to see; empty lists match everything."""

    types: list[str]
    workers: list[str]
    symbols: list[str]
    levels: list[str]
    last_n: int

    @property
    def narrowed(self) -> bool:
        """Return True when any filter is set."""
        return bool(self.types or self.workers or self.symbols or self.levels)


def draw_filters() -> LogFilters:
    """Draw the filters and return them."""
    columns = st.columns([3, 2, 2, 2, 1])
    types = columns[0].multiselect("Type", EVENT_TYPE_NAMES, key="logs_types")
    workers = columns[1].multiselect("Worker", common.known_workers(), key="logs_workers")
    symbols = columns[2].multiselect("Symbol", common.known_symbols(), key="logs_symbols")
    levels = columns[3].multiselect("Level", LOG_LEVELS, key="logs_levels")
    last_n = columns[4].number_input("Lines", min_value=10, max_value=MAX_LINES, value=200, step=50, key="logs_lines")
    return LogFilters(types, workers, symbols, levels, int(last_n))


def show_tail(filters: LogFilters) -> None:
    """Show the matching records, newest first."""
    tail = common.journal_tail(
        types=filters.types,
        workers=filters.workers,
        symbols=filters.symbols,
        levels=filters.levels,
        last_n=filters.last_n,
    )
    rows = tail.rows
    searched = "the whole journal" if tail.complete else f"the newest {tail.bytes_scanned / 1e6:,.1f} MB of the journal"
    st.caption(f"{len(rows):,} records (searched {searched}), newest first; as of {common.utc_time(common.wall_ms())}.")
    if rows.empty:
        st.info("No journal records match the filters." if filters.narrowed else "The journal is empty.")
        return
    table = pd.DataFrame(
        {
            "time": rows["time"],
            "level": [LEVEL_MARKS.get(level, level) for level in rows["level"]],
            "type": rows["type"],
            "worker": rows["worker"],
            "symbol": rows["symbol"],
            "detail": rows["detail"],
            "seq": rows["seq"],
        }
    ).iloc[::-1]
    st.dataframe(table, hide_index=True, width="stretch", height=600, key="journal_table", placeholder=common.MISSING)


def show_commands() -> None:
    """The operator command inbox: what was asked, and what the daemon made of it."""
    with st.expander("Operator commands (inbox)"):
        inbox = common.commands(limit=100)
        if inbox.empty:
            st.caption("No commands have been sent to this store.")
        else:
            st.dataframe(
                inbox[["command_id", "created_time", "command", "payload", "status", "detail", "acked_seq"]],
                hide_index=True,
                width="stretch",
                key="commands_table",
                placeholder=common.MISSING,
            )


common.page_header("Logs")
filters = draw_filters()
auto_refresh = st.toggle(f"Auto-refresh every {REFRESH_EVERY_S} s", value=False, key="logs_auto_refresh")
if auto_refresh:
    # A fragment reruns on its own: only the tail refreshes, the filters above keep their state.
    st.fragment(run_every=REFRESH_EVERY_S)(show_tail)(filters)
else:
    show_tail(filters)
show_commands()
