import os
from pathlib import Path

import pytest

# CHROMIUM_PATH is for trying the skip/fail behaviour or another build; CI uses the default.
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def _static_without_manifest(settings):
    # Production serves hashed names from collectstatic's manifest; tests render templates
    # without running collectstatic, so they resolve {% static %} against the source files.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, one per test module (shared by every browser test)."""
    if not CHROMIUM.exists():
        # A skip would hide a gap: `make test` installs it when it can (as root), and says so otherwise.
        pytest.fail(f"{CHROMIUM} is not installed: apt-get install chromium (Debian/Ubuntu).", pytrace=False)
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls
        # from a thread with a running loop (SynchronousOnlyOperation). The tests' own DB calls
        # are plain synchronous code, so this is safe here, and only for this module's tests
        # (a known pytest-django + Playwright issue).
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
