"""The documentation site as a reader meets it, in a real headless chromium: built with ``mkdocs build --strict``
into a temporary directory and served over HTTP on 127.0.0.1 (Material's search runs in a web worker, which a
``file://`` page is refused). The navigation leads to every page of mkdocs.yml's ``nav`` (none answers 404), a
search for a scenario key lists the scenario reference, and getting started, the scenario reference and a fault page
load without console errors, their images decoded and nothing making the page scroll sideways. A screenshot of each
is kept in reports/test-artifacts/browser/ (or $HARNESS_TEST_ARTIFACTS/browser/), beside tests/test_browser.py's.

The report screenshots on the getting-started page are taken here too, never by hand (see ``REPORT_SHOTS``).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor

from tests import browser
from tests.test_docs import _mkdocs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ARTIFACTS = Path(os.environ.get("HARNESS_TEST_ARTIFACTS", ROOT / "reports" / "test-artifacts")) / "browser"

# The report screenshots of docs/getting-started.md are committed PNGs, so that `mkdocs build --strict` works from a
# clean clone with nothing run first (a generated, gitignored image would make every plain build fail on a missing
# link, and taking one needs real runs of Prometheus and fio: too slow for `nox -s docs`). They are taken by
# test_the_report_screenshots_are_the_reports_of_today below, never by hand: each PNG records (in a tEXt chunk) the
# hash of harness/report/ it was taken from, and the test takes it again when that code has changed since or the
# file is missing (commit the new PNG with the change), or when HARNESS_DOCS_SCREENSHOTS=1 asks for it. A clean
# checkout whose screenshots match its report code writes nothing, so the suite leaves the worktree clean.
# test_the_report_screenshots_exist fails, without a browser, when one is missing.
REPORT_SHOTS = DOCS / "assets" / "screenshots"
REPORT_KINDS = ("run", "compare")
SOURCE_KEY = b"harness-report-source"
SHOT_SCALE = 0.75  # 1366 x 900 px windows at 1025 x 675: legible on the page, a fraction of the bytes


def nav_pages() -> list[str]:
    """Every page of mkdocs.yml's ``nav``, as its path under docs/."""

    def walk(node: object) -> Iterator[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from walk(value)

    return list(walk(mkdocs_config()["nav"]))


class _MkdocsTags(SafeConstructor):
    """mkdocs.yml's own tag (``!relative $docs_dir``) read as its text: the nav is all this module needs."""


_MkdocsTags.add_constructor("!relative", lambda loader, node: loader.construct_scalar(node))


def mkdocs_config() -> dict[str, object]:
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _MkdocsTags
    config: dict[str, object] = yaml.load((ROOT / "mkdocs.yml").read_text())
    return config


def page_path(page: str) -> str:
    """The URL path mkdocs gives a page (use_directory_urls): ``a/b.md`` -> ``/a/b/``, ``a/index.md`` -> ``/a/``."""
    stem = page.removesuffix(".md")
    stem = "" if stem == "index" else stem.removesuffix("/index")
    return f"/{stem}/" if stem else "/"


# --- the screenshots' provenance: the hash of the report code, in the PNG itself -----------------------------------


def report_source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "harness" / "report").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        yield png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length


def png_text(png: bytes, key: bytes) -> str | None:
    for kind, data in _chunks(png):
        if kind == b"tEXt" and data.split(b"\0", 1)[0] == key:
            return data.split(b"\0", 1)[1].decode("latin-1")
    return None


def with_png_text(png: bytes, key: bytes, value: str) -> bytes:
    """``png`` with a tEXt chunk ``key`` = ``value`` just before its end (IEND)."""
    data = key + b"\0" + value.encode("latin-1")
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    end = png.rindex(b"IEND") - 4
    return png[:end] + chunk + png[end:]


def test_the_report_screenshots_exist() -> None:
    for kind in REPORT_KINDS:
        shot = REPORT_SHOTS / f"{kind}-report.png"
        assert shot.is_file(), f"{shot} is missing: run `pytest tests/test_docs_site.py` (the browser test takes it)"
        assert png_text(shot.read_bytes(), SOURCE_KEY), f"{shot} was not taken by tests/test_docs_site.py"
        assert f"assets/screenshots/{kind}-report.png" in (DOCS / "getting-started.md").read_text()


def test_a_png_keeps_the_text_it_is_given() -> None:
    png = (REPORT_SHOTS / "run-report.png").read_bytes()
    marked = with_png_text(png, b"test-key", "value")
    assert png_text(marked, b"test-key") == "value"
    assert [k for k, _ in _chunks(marked)][-1] == b"IEND"


def test_every_nav_page_has_a_url() -> None:
    assert page_path("index.md") == "/"
    assert page_path("faults/index.md") == "/faults/"
    assert page_path("reference/scenario.md") == "/reference/scenario/"
    assert all((DOCS / page).is_file() for page in nav_pages())


# --- in the browser ------------------------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the requests are not the finding
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site, built strictly into a temporary directory and served on 127.0.0.1: its base URL."""
    mkdocs = _mkdocs()
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]' installs it with mkdocs-material)")
    out = tmp_path_factory.mktemp("site") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [*mkdocs, "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, name="docs-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.SiteBrowser]:
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    with browser.site_chromium() as b:
        yield b


@pytest.mark.browser
def test_the_navigation_leads_to_every_page(chromium: browser.SiteBrowser, site: str) -> None:
    check = chromium.check_url(site + "/")
    assert check.title.startswith("prom-storage-harness"), check.title
    links = chromium.links("nav.md-nav--primary a.md-nav__link[href]")
    linked = {urlsplit(u).path for u in links if urlsplit(u).netloc == urlsplit(site).netloc}
    expected = {page_path(p) for p in nav_pages()}
    assert expected - linked == set(), "pages of mkdocs.yml's nav the site's navigation does not link"
    statuses = chromium.statuses(sorted(site + path for path in linked))
    assert {u: s for u, s in statuses.items() if s != 200} == {}
    chromium.window_screenshot(ARTIFACTS / "docs-home.png")


@pytest.mark.browser
@pytest.mark.parametrize(
    "page",
    ["getting-started.md", "reference/scenario.md", "faults/power-loss.md", "field-notes.md"],
)
def test_a_page_as_a_reader_sees_it(chromium: browser.SiteBrowser, site: str, page: str) -> None:
    check = chromium.check_url(site + page_path(page))
    shot = chromium.window_screenshot(ARTIFACTS / f"docs-{page.removesuffix('.md').replace('/', '-')}.png")
    assert shot.stat().st_size > 10_000
    assert "404" not in check.title, check.title
    assert check.console_errors == []
    broken = [i["alt"] for i in check.images if not (i["complete"] and i["naturalWidth"] > 0)]
    assert broken == [], f"images that did not load: {broken}"
    assert check.scroll_width_px <= check.client_width_px, f"the page scrolls sideways (see {shot})"


@pytest.mark.browser
def test_search_finds_a_scenario_key_in_the_reference(chromium: browser.SiteBrowser, site: str) -> None:
    chromium.check_url(site + page_path("getting-started.md"))
    results = chromium.search("max_samples_lost")
    chromium.window_screenshot(ARTIFACTS / "docs-search.png")
    paths = [urlsplit(href).path for _, href in results]
    assert page_path("reference/scenario.md") in paths, results


@pytest.mark.browser
def test_the_report_screenshots_are_the_reports_of_today(
    chromium: browser.SiteBrowser, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Takes the screenshots of docs/getting-started.md again where the report code changed since (see
    ``REPORT_SHOTS``): the run report and a comparison of two real runs, the top of each as a reader first sees it."""
    source = report_source_hash()
    forced = os.environ.get("HARNESS_DOCS_SCREENSHOTS") == "1"
    shots = {kind: REPORT_SHOTS / f"{kind}-report.png" for kind in REPORT_KINDS}
    stale = [k for k, p in shots.items() if forced or not p.is_file() or png_text(p.read_bytes(), SOURCE_KEY) != source]
    if not stale:
        return  # taken from this very report code: nothing to do, and no real runs to pay for
    from tests.test_trend import harness

    real_runs: Path = request.getfixturevalue("real_runs")
    runs = sorted(p.parent for p in real_runs.glob("*/*/result.json"))
    compared = harness("compare", str(runs[0]), str(runs[1]), "-o", str(tmp_path / "compare.html"))
    assert compared.returncode in (0, 1), compared.stdout + compared.stderr
    pages = {"run": runs[1] / "report.html", "compare": tmp_path / "compare.html"}
    for kind in stale:
        check = chromium.check(pages[kind])
        assert check.console_errors == [] and check.images, f"the {kind} report did not render"
        png = chromium.window_screenshot(ARTIFACTS / f"docs-{kind}-report.png", scale=SHOT_SCALE).read_bytes()
        shots[kind].parent.mkdir(parents=True, exist_ok=True)
        shots[kind].write_bytes(with_png_text(png, SOURCE_KEY, source))
