"""Fixtures of the browser test: the built book served on localhost and a headless Chromium.

The browser is Debian's ``chromium`` driven through Debian's ``chromium-driver`` by selenium; both
paths are passed explicitly, so selenium never downloads a browser or a driver. Without the built
book or the browser the tests are skipped on a developer machine and fail under ``CI=true``.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# $DSF_BOOK_HTML points the tests at another build, e.g. a partial one
# (`python -m dsflib.chapters build --only dsf s6 --out _build/partial`: _build/partial/_build/html)
HTML = Path(os.environ.get("DSF_BOOK_HTML") or ROOT / "_build" / "html").resolve()
SCREENSHOTS = ROOT / "_build" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str):
    """Skip locally; under CI a missing prerequisite is an error, never a silent skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test must run)", pytrace=False)
    pytest.skip(reason)


def _binary(env: str, *names: str) -> str | None:
    candidates = [os.environ.get(env)] + [shutil.which(n) for n in names]
    return next((c for c in candidates if c and Path(c).exists()), None)


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML / "index.html").exists():
        missing(f"the book is not built ({HTML / 'index.html'} is missing): run `make book` first")
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def server(html_dir):
    """Base URL of ``_build/html`` served by a thread on 127.0.0.1 (a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    chromium = _binary("CHROMIUM", "chromium", "chromium-browser")
    driver_path = _binary("CHROMEDRIVER", "chromedriver")
    if chromium is None or driver_path is None:
        missing("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (it is in the project's test extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1800", "--hide-scrollbars", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
