"""What AppTest can check of .streamlit/config.toml: the values load, and the two that change rendering apply.

The server settings (loopback address, XSRF, CORS, allowed hosts) only matter
to a running server; AppTest has none, so they are checked as loaded values
here and exercised for real by tests/browser.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT_ROOT

CONFIG_TOML = PROJECT_ROOT / ".streamlit" / "config.toml"
EXPECTED = {
    "server.address": "127.0.0.1",
    "server.headless": True,
    "server.enableXsrfProtection": True,
    "server.enableCORS": True,
    "server.enableAgentApi": False,
    "browser.gatherUsageStats": False,
    "client.showErrorDetails": "none",
    "client.toolbarMode": "minimal",
    "runner.magicEnabled": False,
}


def test_config_toml_when_parsed_then_every_option_is_one_streamlit_knows():
    data = tomllib.loads(CONFIG_TOML.read_text())
    options = {f"{section}.{name}" for section, values in data.items() for name in values}

    assert options <= set(streamlit_config.get_config_options())
    for option, expected in EXPECTED.items():
        section, name = option.split(".")
        assert data[section][name] == expected, option


def test_page_when_it_raises_then_browser_gets_no_error_text_and_magic_renders_nothing():
    if Path.cwd() != PROJECT_ROOT:
        pytest.skip("Streamlit reads .streamlit/config.toml from the working directory")
    script = (
        "import streamlit as st\n"
        "'a bare string magic would render'\n"
        "raise RuntimeError('canary-zz-9876543210 in an exception')\n"
    )

    at = AppTest.from_string(script, default_timeout=30).run()

    assert {key: streamlit_config.get_option(key) for key in EXPECTED} == EXPECTED
    (exception,) = at.exception
    assert "canary-zz-9876543210" not in str(exception.proto) and "RuntimeError" not in str(exception.proto)
    assert not at.markdown
