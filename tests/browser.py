"""A real headless chromium for the report tests: the only module of the suite that imports selenium.

Debian's ``chromium`` is driven through Debian's ``chromium-driver`` (both named in scripts/debian-packages.txt), both
given by path, so Selenium Manager never tries to download a browser or driver (nothing can be downloaded here).
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

WINDOW_WIDTH_PX = 1366  # the narrowest laptop screen still common: reports must fit it without scrolling sideways
WINDOW_HEIGHT_PX = 900
PAGE_LOAD_TIMEOUT_S = 60


def missing() -> str | None:
    """Why no browser test can run here (a reason for pytest.skip), or None."""
    absent = [b for b in ("chromium", "chromedriver") if shutil.which(b) is None]
    if absent:
        return f"{' and '.join(absent)} not installed (Debian packages chromium, chromium-driver)"
    return None


@dataclass(frozen=True)
class PageCheck:
    """What a person would see wrong on a page, measured in the browser."""

    title: str
    console_errors: list[str]
    images: list[dict[str, Any]]  # alt, naturalWidth, naturalHeight of every <img>
    client_width_px: int
    scroll_width_px: int
    too_wide: list[str]  # tables, pre blocks and figures whose right edge is beyond the window


# Runs in the page: the facts PageCheck holds. Elements wider than the viewport are named by tag, id/class and text.
_MEASURE_JS = """
const root = document.scrollingElement;
const wide = [];
for (const el of document.querySelectorAll('table, pre, figure, img, header, section')) {
  const r = el.getBoundingClientRect();
  if (r.right > root.clientWidth + 0.5) {
    const text = (el.innerText || el.getAttribute('alt') || '').slice(0, 60).replace(/\\s+/g, ' ');
    wide.push(`${el.tagName.toLowerCase()} right edge ${Math.round(r.right)}px: ${text}`);
  }
}
return {
  title: document.title,
  images: Array.from(document.images).map(i => ({alt: i.alt, naturalWidth: i.naturalWidth,
                                                  naturalHeight: i.naturalHeight, complete: i.complete})),
  clientWidth: root.clientWidth,
  scrollWidth: root.scrollWidth,
  tooWide: wide,
};
"""


class Browser:
    def __init__(self, driver: webdriver.Chrome) -> None:
        self._driver = driver

    def check(self, page: Path) -> PageCheck:
        self._driver.get_log("browser")  # drop what an earlier page logged
        self._driver.get(page.resolve().as_uri())
        facts = self._driver.execute_script(_MEASURE_JS)
        errors = [e["message"] for e in self._driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        return PageCheck(
            title=facts["title"],
            console_errors=errors,
            images=facts["images"],
            client_width_px=int(facts["clientWidth"]),
            scroll_width_px=int(facts["scrollWidth"]),
            too_wide=list(facts["tooWide"]),
        )

    def screenshot(self, out: Path) -> Path:
        """The whole page (not only the window) as PNG, at the window's width."""
        shot = self._driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out


@contextmanager
def chromium() -> Iterator[Browser]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    # --no-sandbox: the suite runs as root in CI, where chromium's sandbox refuses to start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={WINDOW_WIDTH_PX},{WINDOW_HEIGHT_PX}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        yield Browser(driver)
    finally:
        driver.quit()


# --- pages served over HTTP (the documentation site): by URL, with what a reader clicks and types ----------------

SEARCH_TIMEOUT_S = 30  # Material's search builds its index in a web worker after the page loads


class SiteBrowser(Browser):
    """The same browser, for pages served over HTTP (a ``file://`` page has no search: its web worker is refused)."""

    def check_url(self, url: str) -> PageCheck:
        self._driver.get_log("browser")
        self._driver.get(url)
        facts = self._driver.execute_script(_MEASURE_JS)
        errors = [e["message"] for e in self._driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        return PageCheck(
            title=facts["title"],
            console_errors=errors,
            images=facts["images"],
            client_width_px=int(facts["clientWidth"]),
            scroll_width_px=int(facts["scrollWidth"]),
            too_wide=list(facts["tooWide"]),
        )

    def links(self, css: str) -> list[str]:
        """The absolute URL of every link matching ``css`` on the page open now, in document order."""
        return [str(e.get_attribute("href")) for e in self._driver.find_elements(By.CSS_SELECTOR, css)]

    def statuses(self, urls: list[str]) -> dict[str, int]:
        """The HTTP status of each URL as the page open now fetches it (the browser's view, not the test's)."""
        script = """
        const done = arguments[arguments.length - 1];
        Promise.all(arguments[0].map(u => fetch(u, {cache: 'no-store'}).then(r => [u, r.status], () => [u, 0])))
          .then(pairs => done(Object.fromEntries(pairs)));
        """
        return {str(k): int(v) for k, v in self._driver.execute_async_script(script, urls).items()}

    def search(self, query: str) -> list[tuple[str, str]]:
        """Type ``query`` into a Material for MkDocs search box, as a reader does, and return each result's title and
        link once results are listed (a TimeoutException when none come within SEARCH_TIMEOUT_S)."""
        box = self._driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
        self._driver.execute_script("arguments[0].focus()", box)
        box.send_keys(query)
        css = "li.md-search-result__item a.md-search-result__link"
        WebDriverWait(self._driver, SEARCH_TIMEOUT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
        found = self._driver.find_elements(By.CSS_SELECTOR, css)
        return [(e.text.split("\n", 1)[0], str(e.get_attribute("href"))) for e in found]

    def window_screenshot(self, out: Path, *, scale: float = 1.0) -> Path:
        """What the window shows (the top of a long page), as PNG; ``scale`` below 1 makes it smaller."""
        metrics = self._driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        view = metrics["cssVisualViewport"]
        clip = {"x": 0, "y": view["pageY"], "width": view["clientWidth"], "height": view["clientHeight"]}
        shot = self._driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "clip": {**clip, "scale": scale}}
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out


@contextmanager
def site_chromium() -> Iterator[SiteBrowser]:
    """``chromium()`` for pages served over HTTP."""
    with chromium() as browser:
        yield SiteBrowser(browser._driver)
