"""Chromium fixtures: a headless browser per test, driven over the DevTools protocol.

Tests here skip when the Debian ``chromium`` package is absent (scripts/setup.sh
installs it, and CI runs them). Most tests share one browser and get a tab in a browser
context of their own; a test that needs other flags (a microphone file that no earlier
test has played) launches its own.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import pytest

from .cdp import CHROMIUM, HEADLESS_ARGS, Chromium, Page, chromium_available, open_page

Launch = Callable[..., Chromium]


def _require_chromium() -> None:
    if not chromium_available():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (scripts/setup.sh installs it)")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless Chromium for the session, with the fake microphone (a beep)."""
    _require_chromium()
    browser = Chromium(tmp_path_factory.mktemp("chromium"))
    try:
        browser.start()
        yield browser
    finally:
        browser.close()


@pytest.fixture
def launch_chromium(tmp_path: pathlib.Path) -> Iterator[Launch]:
    """``launch(*extra_args)`` starts a Chromium of the test's own (a microphone file, say);
    all are killed after the test."""
    _require_chromium()
    browsers: list[Chromium] = []

    def launch(*extra_args: str, base_args: Sequence[str] = HEADLESS_ARGS) -> Chromium:
        browser = Chromium(tmp_path / f"chromium-{len(browsers)}", extra_args, base_args)
        browsers.append(browser)
        browser.start()
        return browser

    try:
        yield launch
    finally:
        for browser in browsers:
            browser.close()


@pytest.fixture
async def page(chromium: Chromium) -> AsyncIterator[Page]:
    """A blank tab (in a browser context of its own) in the session's Chromium."""
    async with open_page(chromium) as tab:
        yield tab
