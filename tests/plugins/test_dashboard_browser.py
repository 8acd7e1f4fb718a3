"""The dashboard in a real browser: Debian's headless Chromium, driven through its chromedriver
(Selenium), against the real app served by ``pserve`` on a free loopback port.

The server gets a throwaway SQLite file migrated like ``make run`` does, and data put in
through the API as sensors would. The browser signs in through the form, then the tests check
what the pages show, keep a screenshot of each page in ``build/screenshots/<page>.png`` (a test
artifact; ``build/`` is not committed), and check accessibility basics: every form control has
a label, every text's colour has at least 4.5:1 contrast with what is behind it (computed
styles, WCAG's formula), and the keyboard reaches the sign-in field, then its button, with a
visible focus ring.

Every process started here (pserve; chromedriver and its Chromium with all of Chromium's
children) runs in a process group of its own and is stopped by group, even when a test fails.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sensorhub import make_app, migrations

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
PSERVE = str(Path(sys.executable).parent / "pserve")
ADMIN_TOKEN = "browser-test-admin-token-0123456789"
SESSION_SECRET = "browser-test-session-secret-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(port: int, method: str, path: str, body=None, token: str = ADMIN_TOKEN):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def stop_group(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process's whole group, SIGKILL what is left after ``timeout``."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        process.wait(5)


def migrate(database_url: str) -> None:
    app = make_app({"sensorhub.database.url": database_url, "sensorhub.plugins": ""}, environ={})
    engine = app.registry["dbengine"]
    try:
        migrations.upgrade(engine, migrations.plugin_locations(["auth", "ingest"], {}))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """pserve with auth, ingest and dashboard on a fresh SQLite file; yields its port."""
    workdir = tmp_path_factory.mktemp("dashboard-browser")
    database_url = f"sqlite:///{workdir / 'dashboard.sqlite'}"
    migrate(database_url)
    port = free_port()
    settings = {
        "use": "egg:sensorhub",
        "sensorhub.plugins": "auth ingest dashboard",
        "sensorhub.database.url": database_url,
        "sensorhub.port": port,
        "sensorhub.threads": 4,
        # http://127.0.0.1: a Secure cookie would not come back over plain HTTP.
        "sensorhub.dashboard.secure_cookie": "false",
    }
    ini = workdir / "dashboard.ini"
    lines = ["[app:main]", *(f"{key} = {value}" for key, value in settings.items())]
    ini.write_text("\n".join([*lines, "", "[server:main]", "use = egg:sensorhub", ""]))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENSORHUB_")}
    environ["SENSORHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
    environ["SENSORHUB_DASHBOARD_SESSION_SECRET"] = SESSION_SECRET
    log_path = workdir / "pserve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [PSERVE, str(ini)],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(OSError):
                if call(port, "GET", "/healthz")[0] == 200:
                    break
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield port
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def fleet(server):
    """Three sensors as the API makes them: two reporting values, one never seen (stale)."""
    port = server
    sensors = {}
    for name in ("greenhouse", "cellar", "attic"):
        status, created = call(port, "POST", "/api/v1/sensors", {"name": name})
        assert status == 201, created
        sensors[name] = created
    now = datetime.now(UTC)
    readings = [
        {
            "type": kind,
            "value": base + (i % 7) * step,
            "unit": unit,
            "ts": int((now - timedelta(minutes=5 * i)).timestamp() * 1000),
            "eventId": f"{kind}-{i}",
        }
        for i in range(40)
        for kind, base, step, unit in (
            ("temperature", 18.0, 0.8, "Cel"),
            ("humidity", 55, 2, "%RH"),
        )
    ]
    for name in ("greenhouse", "cellar"):
        status, answer = call(port, "POST", "/api/v1/events", readings, sensors[name]["token"])
        assert status == 201, answer
    duplicate = readings[:2]
    call(port, "POST", "/api/v1/events", duplicate, sensors["greenhouse"]["token"])
    return {name: created["sensorId"] for name, created in sensors.items()}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root (CI does); the sandbox refuses root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    # Debian's driver, matched to Debian's chromium; Selenium downloads nothing.
    service = Service(CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            if service.process is not None:
                stop_group(service.process, timeout=5)


@pytest.fixture(scope="module")
def signed_in(server, fleet, browser):
    """The browser after signing in through the form: its screenshot is sign-in.png."""
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"http://127.0.0.1:{server}/dashboard/")
    assert "/dashboard/sign-in" in browser.current_url  # sent to sign in first
    screenshot(browser, "sign-in")
    browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form.sign-in button"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Fleet"
    return browser


def follow(driver, element) -> None:
    """Click ``element`` and wait for the next page: until the old page is gone, a lookup can
    find the old page's elements (and then fail as stale while reading them)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    old_page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 10).until(expected_conditions.staleness_of(old_page))


def screenshot(driver, page: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(1000, min(height + 40, 4000)))
    assert driver.save_screenshot(str(SCREENSHOTS / f"{page}.png"))


# --- accessibility basics: the WCAG arithmetic, then what the browser computed

UNLABELLED_CONTROLS = """
return Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
  .map(el => el.outerHTML);
"""

# Each element that shows text of its own, with the colour it is drawn in (SVG text: its fill)
# and the first opaque background behind it (the page's white when none is set).
TEXT_COLOURS = """
const opaque = c => c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c);
const out = [];
for (const el of document.querySelectorAll('body *')) {
  const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.getClientRects().length) continue;
  const style = getComputedStyle(el);
  if (style.visibility === 'hidden' || style.display === 'none') continue;
  if (el.closest('.skip') && document.activeElement !== el) continue;  // off-screen until focused
  const colour = el instanceof SVGElement ? style.fill : style.color;
  let back = null;
  for (let node = el; node && !back; node = node.parentElement) {
    const bg = getComputedStyle(node).backgroundColor;
    if (opaque(bg)) back = bg;
  }
  out.push({text: el.textContent.trim().slice(0, 40), colour, back: back || 'rgb(255, 255, 255)'});
}
return out;
"""

FOCUS = """
const el = document.activeElement;
const style = getComputedStyle(el);
return {id: el.id, tag: el.tagName, text: el.textContent.trim(),
        outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};
"""


def rgb(css: str) -> tuple[float, float, float]:
    numbers = css[css.index("(") + 1 : css.index(")")].replace("/", ",").split(",")
    r, g, b = (float(part) for part in numbers[:3])
    return r, g, b


def luminance(colour: tuple[float, float, float]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(value) for value in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(rgb(foreground)), luminance(rgb(background))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_formula_is_wcags():
    assert round(contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)"), 1) == 21.0
    assert round(contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)"), 2) == 4.54


def check_accessibility_basics(driver) -> None:
    assert driver.execute_script(UNLABELLED_CONTROLS) == []
    texts = driver.execute_script(TEXT_COLOURS)
    assert texts, "no text found on the page"
    poor = [
        (
            text["text"],
            text["colour"],
            text["back"],
            round(contrast(text["colour"], text["back"]), 2),
        )
        for text in texts
        if contrast(text["colour"], text["back"]) < 4.5
    ]
    assert poor == []


# --- the pages


def test_the_sign_in_page_is_reachable_by_keyboard_with_visible_focus(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.delete_all_cookies()
    browser.get(f"http://127.0.0.1:{server}/dashboard/sign-in")
    check_accessibility_basics(browser)
    visited = []
    for _ in range(6):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focus = browser.execute_script(FOCUS)
        assert focus["outline"] != "none" and focus["width"] >= 2, focus  # a visible ring
        visited.append(focus["id"] or focus["text"])
        if focus["text"] == "Sign in":
            break
    assert visited[-2:] == ["token", "Sign in"], visited  # the field, then its button


def test_an_admin_signs_in_and_sees_the_fleet(signed_in, fleet):
    from selenium.webdriver.common.by import By

    page = signed_in
    screenshot(page, "overview")
    rows = {
        row.get_attribute("data-sensor-id"): row
        for row in page.find_elements(By.CSS_SELECTOR, "tr[data-sensor-id]")
    }
    assert set(rows) == set(fleet.values())
    greenhouse = rows[fleet["greenhouse"]]
    cells = [cell.text for cell in greenhouse.find_elements(By.TAG_NAME, "td")]
    assert cells[2:] == ["24", "80", "80", "2", "0"]  # hour, day, stored, duplicates, rejected
    assert greenhouse.get_attribute("class") == "fresh"
    attic = rows[fleet["attic"]]
    assert attic.get_attribute("class") == "stale"
    assert "stale" in attic.find_element(By.CLASS_NAME, "badge").text
    assert page.find_element(By.ID, "total-stale").text == "1"
    assert page.find_element(By.ID, "total-events").text == "160"
    check_accessibility_basics(page)


def test_a_sensors_page_charts_its_values_per_type(signed_in, server, fleet):
    from selenium.webdriver.common.by import By

    page = signed_in
    follow(page, page.find_element(By.LINK_TEXT, "greenhouse"))
    assert page.find_element(By.TAG_NAME, "h1").text == "greenhouse"
    screenshot(page, "sensor")
    figures = page.find_elements(By.CSS_SELECTOR, "figure.chart-box")
    assert [figure.get_attribute("data-type") for figure in figures] == ["humidity", "temperature"]
    for figure in figures:
        chart = figure.find_element(By.TAG_NAME, "svg")
        assert chart.size["width"] > 300 and chart.size["height"] > 80  # drawn, not collapsed
        title = chart.find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert title in ("humidity (%RH)", "temperature (Cel)")
    latest = page.find_elements(By.CSS_SELECTOR, "table.events tbody tr")
    assert len(latest) == 20
    check_accessibility_basics(page)


def test_an_unknown_sensor_shows_a_404_page(signed_in, server):
    from selenium.webdriver.common.by import By

    page = signed_in
    page.get(f"http://127.0.0.1:{server}/dashboard/sensors/sen_nobody")
    assert page.find_element(By.TAG_NAME, "h1").text == "No such sensor"
    screenshot(page, "not-found")
    check_accessibility_basics(page)
