"""The control room in a real browser: Debian's chromium, driven by Selenium, on a store the daemon wrote.

One daemon run, one Streamlit server and one browser serve the whole module. The
Overview page must draw its equity chart with data in it, no page in the
navigation may show a Streamlit exception box or an error alert, and every page
must open from its own URL (`/overview` too, not only `/`) without Streamlit's
"Page not found" dialog. Screenshots go to the test's temporary folder and to
logs/screenshots/ for people to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import PROJECT_ROOT, config_data_for_tests

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ENSURE_CHROMIUM = PROJECT_ROOT / "scripts" / "ensure_chromium.sh"
SCREENSHOTS_FOR_PEOPLE = PROJECT_ROOT / "logs" / "screenshots"
CANDLES = 1500
SERVER_START_TIMEOUT_S = 60.0
PAGE_TIMEOUT_S = 60.0
WINDOW_WIDTH, WINDOW_HEIGHT = 1400, 1000
MAX_SCREENSHOT_HEIGHT = 8000
# Every page the control room is meant to have; app.py leaves a missing page file out of the navigation.
EXPECTED_PAGES = {"Overview", "Trades", "Workers", "Config", "Logs", "Controls", "Report"}
# The URL path of each page (a bookmark, a link in a runbook) and the title it must show.
PAGE_URLS = {page.lower(): page for page in EXPECTED_PAGES}
# What Streamlit's frontend shows, in a modal, for a URL path no page answers to.
PAGE_NOT_FOUND = "Page not found"

# Streamlit's own test ids (streamlit 1.67 frontend).
APP = '[data-testid="stApp"]'
EXCEPTION_BOX = '[data-testid="stException"]'
PAGE_TITLE = '[data-testid="stMain"] h1'
ERROR_ALERT = '[data-testid="stAlertContentError"]'
NAV_LINKS = '[data-testid="stSidebarNavLink"], [data-testid="stTopNavLink"]'
# The equity chart drawn by dashboard/pages/overview.py: a plotly chart inside the keyed equity container.
EQUITY_CHART = ".st-key-overview_equity .js-plotly-plot"


@dataclass(frozen=True)
class ControlRoom:
    url: str
    log_path: Path


@pytest.fixture(scope="module")
def chromium_installed() -> None:
    """Install chromium and chromedriver through the project's script; a failure fails the test."""
    result = subprocess.run([str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"{ENSURE_CHROMIUM} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="module")
def populated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the daemon flat out on the simulated market into a fresh store folder."""
    store_dir = tmp_path_factory.mktemp("store")
    # configs/config.yaml at full speed with store paths relative to the folder the daemon runs in.
    (store_dir / "config.yaml").write_text(yaml.safe_dump(config_data_for_tests(), sort_keys=False))
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), "--config", "config.yaml", "--candles", str(CANDLES)],
        cwd=store_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"daemon failed:\n{result.stdout}\n{result.stderr}"
    assert (store_dir / "desk.db").is_file(), result.stdout
    return store_dir


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_health(url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(
        f"streamlit did not answer {url}/_stcore/health within {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()}"
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def control_room(populated_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlRoom]:
    """Serve dashboard/app.py on a free loopback port, watching the populated store."""
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {**os.environ, "DESK_STORE_DIR": str(populated_store)}
    # Whatever the developer's shell has must not change what the control room shows here.
    for name in ("DESK_CONFIG", "DESK_DASHBOARD_PASSWORD"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboard/app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    # cwd is the repository so .streamlit/config.toml applies, as it does for run_dashboard.sh.
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_health(url, server, log_path)
        yield ControlRoom(url=url, log_path=log_path)
    finally:
        stop_process(server)


@pytest.fixture(scope="module")
def browser(chromium_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Start headless chromium through Debian's chromedriver (never Selenium Manager, which downloads)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",  # Docker's 64 MB /dev/shm is too small for renderer memory
        # Loopback only: no update checks, sync, field trials or QUIC probes to the internet.
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}",
    ):
        options.add_argument(argument)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until_script_done(driver: WebDriver, timeout_s: float = PAGE_TIMEOUT_S) -> None:
    """Wait until the page's script has run to its end over a live connection."""

    def done(drv: WebDriver) -> bool:
        apps = drv.find_elements(By.CSS_SELECTOR, APP)
        if not apps:
            return False
        state = apps[0].get_attribute("data-test-script-state")
        connected = apps[0].get_attribute("data-test-connection-state") == "CONNECTED"
        # "initial": no run seen yet; "compilationError" counts as done: the page shows the error box.
        return connected and state in ("notRunning", "compilationError")

    WebDriverWait(driver, timeout_s, poll_frequency=0.25).until(done, "the page's script did not finish")


def problems_on_page(driver: WebDriver) -> list[str]:
    boxes = driver.find_elements(By.CSS_SELECTOR, EXCEPTION_BOX)
    alerts = driver.find_elements(By.CSS_SELECTOR, ERROR_ALERT)
    return [f"exception box: {box.text!r}" for box in boxes] + [f"error alert: {alert.text!r}" for alert in alerts]


def page_not_found_shown(driver: WebDriver) -> bool:
    return PAGE_NOT_FOUND in driver.find_element(By.TAG_NAME, "body").text


def page_title(driver: WebDriver) -> str:
    titles = driver.find_elements(By.CSS_SELECTOR, PAGE_TITLE)
    return titles[0].text.strip() if titles else ""


def save_screenshot(driver: WebDriver, folder: Path, name: str) -> Path:
    """Save the whole page, not just the first screen, to `folder` and to logs/screenshots/."""
    path = folder / f"{name}.png"
    # Streamlit scrolls inside its main element, so a page screenshot shows only the viewport: grow
    # the window by what is hidden below for the shot, then put it back.
    hidden = driver.execute_script(
        "const main = document.querySelector('[data-testid=\"stMain\"]');"
        "return main ? main.scrollHeight - main.clientHeight : 0;"
    )
    if hidden > 0:
        driver.set_window_size(WINDOW_WIDTH, min(WINDOW_HEIGHT + hidden, MAX_SCREENSHOT_HEIGHT))
        time.sleep(0.5)  # plotly redraws its charts after a resize; this only affects the picture
    try:
        assert driver.save_screenshot(str(path)), f"could not save {path}"
    finally:
        driver.set_window_size(WINDOW_WIDTH, WINDOW_HEIGHT)
    SCREENSHOTS_FOR_PEOPLE.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SCREENSHOTS_FOR_PEOPLE / path.name)
    return path


def slug_of(url: str) -> str:
    path = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return path if path and ":" not in path else "overview"


def test_overview_when_store_has_a_run_then_equity_chart_shows_data_without_errors(
    control_room: ControlRoom, browser: WebDriver, tmp_path: Path
) -> None:
    browser.get(control_room.url)
    try:
        chart = WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=0.25).until(
            lambda drv: next(iter(drv.find_elements(By.CSS_SELECTOR, EQUITY_CHART)), None)
        )
    except TimeoutException:
        save_screenshot(browser, tmp_path, "overview-no-chart")
        pytest.fail(f"no equity chart ({EQUITY_CHART}) on Overview; problems: {problems_on_page(browser)}")
    wait_until_script_done(browser)
    # An empty equity series still draws axes, which waiting for the element cannot tell apart. Plotly
    # records each drawn trace's point count as _fullData[i]._length (data[i].y may be base64-encoded).
    points = browser.execute_script(
        "return (arguments[0]._fullData || []).reduce((n, trace) => n + (trace._length || 0), 0);", chart
    )
    save_screenshot(browser, tmp_path, "overview")
    problems = problems_on_page(browser)
    assert problems == [], f"{problems}\nstreamlit log:\n{control_room.log_path.read_text()}"
    assert points > 0, "the equity chart has no points"


def test_every_page_in_navigation_when_loaded_then_shows_no_exception(
    control_room: ControlRoom, browser: WebDriver, tmp_path: Path
) -> None:
    browser.get(control_room.url)
    wait_until_script_done(browser)
    links = browser.find_elements(By.CSS_SELECTOR, NAV_LINKS)
    # The link text is the icon's ligature name, then the title.
    pages = {link.text.strip().splitlines()[-1]: link.get_attribute("href") for link in links}
    missing = EXPECTED_PAGES - set(pages)
    assert not missing, f"navigation lacks {sorted(missing)}; it has {sorted(pages)}"

    problems: dict[str, list[str]] = {}
    for title, href in pages.items():
        assert href, f"nav link {title!r} has no href"
        # A fresh load per page: each page must render on its own, not only after Overview ran.
        browser.get(href)
        wait_until_script_done(browser)
        save_screenshot(browser, tmp_path, f"page-{slug_of(href)}")
        if found := problems_on_page(browser):
            problems[title] = found
    assert problems == {}, f"pages with errors: {problems}\nstreamlit log:\n{control_room.log_path.read_text()}"


def test_every_page_when_opened_by_its_url_then_renders_without_page_not_found(
    control_room: ControlRoom, browser: WebDriver, tmp_path: Path
) -> None:
    # The check must be able to fail: a path no page answers to does bring the dialog up.
    browser.get(f"{control_room.url}/no-such-page")
    wait_until_script_done(browser)
    try:
        WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=0.25).until(page_not_found_shown)
    except TimeoutException:
        save_screenshot(browser, tmp_path, "url-no-such-page")
        pytest.fail(f"no {PAGE_NOT_FOUND!r} dialog for an unknown URL: the check below would prove nothing")

    failures: dict[str, str] = {}
    for url_path, title in sorted(PAGE_URLS.items()):
        browser.get(f"{control_room.url}/{url_path}")
        try:
            WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=0.25).until(
                lambda drv, title=title: page_title(drv) == title
            )
        except TimeoutException:
            failures[url_path] = f"title {page_title(browser)!r}, not {title!r}"
            continue
        wait_until_script_done(browser)
        if page_not_found_shown(browser):
            failures[url_path] = f"{PAGE_NOT_FOUND!r} dialog"
        elif found := problems_on_page(browser):
            failures[url_path] = "; ".join(found)
    assert failures == {}, (
        f"pages that do not open by URL: {failures}\nstreamlit log:\n{control_room.log_path.read_text()}"
    )
