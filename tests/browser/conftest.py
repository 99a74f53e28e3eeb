import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from predictor.predictions.models import Outcome, PredictionLog

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


def log_two_days(version, n: int) -> list[PredictionLog]:
    """``n`` single predictions by ``version``, half of them yesterday, outcomes for the first 3/4."""
    rng = np.random.default_rng(0)
    rows = log_singles(version, rng.normal(27, 4, n).clip(15, 45))
    PredictionLog.objects.filter(pk__in=[r.pk for r in rows[: n // 2]]).update(
        created_at=timezone.now() - timedelta(days=1)
    )
    Outcome.objects.bulk_create(
        Outcome(log=row, position=0, observed=float(row.predictions[0] + rng.normal(0, 50)), source="test")
        for row in rows[: n * 3 // 4]
    )
    return rows


def log_singles(version, bmis) -> list[PredictionLog]:
    """Single API predictions by ``version``, logged as serving logs them."""
    return PredictionLog.objects.bulk_create(
        PredictionLog(
            model_version=version,
            channel="api",
            size=1,
            bmi=[float(b)],
            predictions=[version.slope * float(b) + version.intercept],
        )
        for b in bmis
    )
