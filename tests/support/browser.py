"""A real headless Chromium (Debian's chromium and chromedriver, scripts/host-packages.sh), driven by Selenium.

chromedriver is started here on a free 127.0.0.1 port and stopped by its pid; it starts Chromium and ends it when
the session quits. Pages are looked at as a user's browser would: their scripts run, media elements load.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.support import leftovers
from tests.support.processes import free_port, stop

CHROMIUM = ("chromium", "chromium-browser")


def _binary(names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


@contextlib.contextmanager
def headless_chromium(scratch: Path, *, width: int = 1280, height: int = 1400) -> Iterator[webdriver.Remote]:
    """A Chromium session in a fresh profile under `scratch`; skips the test where Chromium is not installed."""
    chromium, driver = _binary(CHROMIUM), _binary(("chromedriver",))
    if chromium is None or driver is None:
        pytest.skip("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    port = free_port()
    log = scratch / "chromedriver.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [driver, f"--port={port}", "--allowed-ips=127.0.0.1", f"--log-path={log}"], stdout=sink, stderr=sink
        )
    leftovers.current().process(process.pid, "chromedriver")
    session: webdriver.Remote | None = None
    try:
        url = f"http://127.0.0.1:{port}"
        _until_ready(url, process)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in (
            "--headless=new",
            "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--autoplay-policy=no-user-gesture-required",
            f"--user-data-dir={scratch / 'profile'}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(argument)
        session = webdriver.Remote(command_executor=url, options=options)
        yield session
    finally:
        if session is not None:
            with contextlib.suppress(Exception):
                session.quit()
        stop(process)


def _until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """chromedriver answers /status once it listens; each try is a bounded request, the whole wait bounded too."""

    def ready(_: object) -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"chromedriver exited with {process.returncode}")
        try:
            return bool(requests.get(f"{url}/status", timeout=2).json()["value"]["ready"])
        except (requests.RequestException, ValueError, KeyError):
            return False

    WebDriverWait(None, timeout, poll_frequency=0.1).until(ready, "chromedriver did not come up")


def wait_for(session: webdriver.Remote, script: str, timeout: float = 60, what: str = "") -> Any:
    """Run `script` (a JavaScript expression's body, `return ...`) until it returns something truthy; that value."""
    return WebDriverWait(session, timeout, poll_frequency=0.1).until(
        lambda s: s.execute_script(script), what or f"page never satisfied: {script}"
    )
