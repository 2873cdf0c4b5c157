"""The reports as a person sees them, in a real headless chromium: the run report, a comparison and a trend, built
from real stored runs (the `real_runs` fixture). Each page loads without console errors, every chart image decodes
(non-zero natural size), nothing is wider than a 1366 px window (no sideways scrolling), and a full-page screenshot of
each is kept in reports/test-artifacts/browser/ (or $HARNESS_TEST_ARTIFACTS/browser/) for CI to upload.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser
from tests.test_trend import harness, make_nights

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("HARNESS_TEST_ARTIFACTS", ROOT / "reports" / "test-artifacts")) / "browser"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Browser]:
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    with browser.chromium() as b:
        yield b


@pytest.fixture(scope="module")
def pages(real_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three kinds of report, each rendered by the harness's own commands from stored results."""
    runs = sorted(p.parent for p in real_runs.glob("*/*/result.json"))
    out = tmp_path_factory.mktemp("pages")
    compared = harness("compare", str(runs[0]), str(runs[1]), "-o", str(out / "compare.html"))
    assert compared.returncode in (0, 1), compared.stdout + compared.stderr
    nights = out / "nights"
    make_nights(real_runs, nights, 8, slow_from=7)
    trend = harness("trend", str(nights), "-o", str(out / "trend.html"))
    assert trend.returncode == 1, trend.stdout + trend.stderr  # the injected regression
    return {"run": runs[1] / "report.html", "compare": out / "compare.html", "trend": out / "trend.html"}


@pytest.mark.parametrize("kind", ["run", "compare", "trend"])
def test_report_in_a_real_browser(chromium: browser.Browser, pages: dict[str, Path], kind: str) -> None:
    check = chromium.check(pages[kind])
    shot = chromium.screenshot(ARTIFACTS / f"{kind}-report.png")
    assert shot.stat().st_size > 10_000
    assert check.title, "the page did not load"
    assert check.console_errors == []
    assert check.images, "no chart on the page"
    broken = [
        i["alt"] for i in check.images if not (i["complete"] and i["naturalWidth"] > 0 and i["naturalHeight"] > 0)
    ]
    assert broken == [], f"charts that did not render: {broken}"
    assert check.client_width_px <= browser.WINDOW_WIDTH_PX
    assert check.too_wide == []
    assert check.scroll_width_px <= check.client_width_px, f"page scrolls sideways (see {shot})"
