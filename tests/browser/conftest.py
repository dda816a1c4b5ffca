"""Fixtures of the browser tier: a real headless Chromium (Debian's ``chromium`` and
``chromium-driver`` packages) driven by Selenium.

``browser``: a fresh WebDriver per test, 1280x900, always quit. The driver is started from
``/usr/bin/chromedriver`` explicitly, so Selenium Manager never tries to download one.
``browser.get_log("browser")`` returns the page's console messages.
``shot(name)``: saves a PNG screenshot of the page into the test's artifacts folder
(``chaos_artifacts``) and returns its path.

Every test in this folder is marked ``browser`` (``pytest -m browser`` runs the tier).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
WINDOW = (1280, 900)
INSTALL = "apt-get install -y chromium chromium-driver"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def browser() -> Iterator:
    """A headless Chromium under Selenium, quit after the test whatever happens."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(f"the browser tests need {' and '.join(missing)}: install them with "
                    f"`{INSTALL}`", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--allow-file-access-from-files",
                f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # get_log("browser")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_window_size(*WINDOW)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shot(browser, chaos_artifacts: Path) -> Callable[..., Path]:
    """``shot(name)``: a screenshot of the current page, ``<artifacts>/<name>.png``;
    ``shot(name, full_page=True)``: of the whole page (the window grows to its height for
    the shot, then goes back)."""
    def take(name: str, *, full_page: bool = False) -> Path:
        path = chaos_artifacts / f"{name}.png"
        if full_page:
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(WINDOW[0], min(max(height, WINDOW[1]), 16000))
        try:
            if not browser.save_screenshot(str(path)):
                raise AssertionError(f"could not save the screenshot {path}")
        finally:
            if full_page:
                browser.set_window_size(*WINDOW)
        return path
    return take
