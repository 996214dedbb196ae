"""Headless Chromium for page tests: Debian's ``chromium`` driven by Playwright.

CI installs the browser (``.ci/run``); on a developer machine without it the page tests are skipped,
but under ``CI=true`` a missing browser is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions",
]
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


def chromium_path() -> str | None:
    """The system Chromium, if installed."""
    return os.environ.get("BEACON_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """A Playwright Browser on the system Chromium (Playwright gives it a fresh, empty profile)."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run should have installed it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def artifact(name: str) -> Path:
    """Where a test saves a screenshot for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
