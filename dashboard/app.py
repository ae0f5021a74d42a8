"""The control room's entry point: `streamlit run dashboard/app.py` from the repository root.

It sets the page up and builds the navigation; each page is a file in
`dashboard/pages/`. A page whose file is missing is left out of the
navigation rather than breaking the app (pages are written independently).
Which store the pages read is set by DESK_STORE_DIR or DESK_CONFIG, see
`dashboard/common.py`.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts dashboard/ on sys.path, not the repository: the pages import dashboard.* and desk.*.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

PAGES_DIR = Path(__file__).resolve().parent / "pages"
# (file, title, icon) in navigation order; the first page is the default. A page's URL is its title in lower case.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("overview.py", "Overview", ":material/monitoring:"),
    ("trades.py", "Trades", ":material/receipt_long:"),
    ("workers.py", "Workers", ":material/groups:"),
    ("config_editor.py", "Config", ":material/tune:"),
    ("logs.py", "Logs", ":material/article:"),
    ("controls.py", "Controls", ":material/toggle_on:"),
    ("report.py", "Report", ":material/picture_as_pdf:"),
)
# The default page's own url_path: Streamlit serves the default page at "/" whatever it is set to, and
# never by this name, but it must differ from the alias that takes the page's usual URL.
DEFAULT_PAGE_KEY = "home"


def available_pages() -> list[st.Page]:
    """Return a Page for every page file that exists, in navigation order, and the default page's alias.

    Streamlit serves the default page at "/" only: loading "/overview" would
    show "Page not found". A hidden page at the default page's usual URL
    switches to it, so every page also opens by `/<title in lower case>`.
    """
    pages: list[st.Page] = []
    for file_name, title, icon in PAGES:
        path = PAGES_DIR / file_name
        if not path.is_file():
            continue
        if pages:
            pages.append(st.Page(path, title=title, icon=icon, url_path=title.lower()))
            continue
        default = st.Page(path, title=title, icon=icon, url_path=DEFAULT_PAGE_KEY, default=True)
        pages.append(default)
        alias = functools.partial(st.switch_page, default)
        pages.append(st.Page(alias, title=title, icon=icon, url_path=title.lower(), visibility="hidden"))
    return pages


st.set_page_config(page_title="Trading Desk", page_icon=":material/candlestick_chart:", layout="wide")
st.navigation(available_pages()).run()
