"""The control room's entry point: `streamlit run dashboard/app.py` from the repository root.

It sets the page up and builds the navigation; each page is a file in
`dashboard/pages/`. A page whose file is missing is left out of the
navigation rather than breaking the app (pages are written independently).
Which store the pages read is set by DESK_STORE_DIR or DESK_CONFIG, see
`dashboard/common.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts dashboard/ on sys.path, not the repository: the pages import dashboard.* and desk.*.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

PAGES_DIR = Path(__file__).resolve().parent / "pages"
# (file, title, icon) in navigation order; the first page is the default.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("overview.py", "Overview", ":material/monitoring:"),
    ("trades.py", "Trades", ":material/receipt_long:"),
    ("workers.py", "Workers", ":material/groups:"),
    ("config_editor.py", "Config", ":material/tune:"),
    ("logs.py", "Logs", ":material/article:"),
    ("controls.py", "Controls", ":material/toggle_on:"),
    ("report.py", "Report", ":material/picture_as_pdf:"),
)


def available_pages() -> list[st.Page]:
    """Return a Page for every page file that exists, in navigation order."""
    pages = []
    for file_name, title, icon in PAGES:
        path = PAGES_DIR / file_name
        if path.is_file():
            pages.append(st.Page(path, title=title, icon=icon, url_path=title.lower(), default=not pages))
    return pages


st.set_page_config(page_title="Trading Desk", page_icon=":material/candlestick_chart:", layout="wide")
st.navigation(available_pages()).run()
