"""Where the operator pages write, on top of `dashboard.common`'s store resolution and reader.

The Config and Controls pages depend on this one small surface: the
`StoreLocation` the control room was started on (env DESK_STORE_DIR or
DESK_CONFIG) and the newest inbox rows, read uncached so a command queued a
moment ago is listed at once.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.common import StoreLocation, StoreLocationError, database_display, reader, store_location
from desk.config_versions import redact_text

__all__ = ["StoreLocation", "database_display", "location_or_stop", "recent_commands"]


def location_or_stop() -> StoreLocation:
    """Return the store location, or show why there is none and stop the page."""
    try:
        return store_location()
    except StoreLocationError as exc:
        st.error(f"No store to control: {redact_text(str(exc))}")
        st.stop()
        raise  # st.stop raises; this line only tells readers and type checkers that nothing follows


def recent_commands(limit: int = 50) -> pd.DataFrame:
    """Return the newest inbox rows, newest first (columns of `StoreReader.commands`)."""
    return reader().commands(limit)
