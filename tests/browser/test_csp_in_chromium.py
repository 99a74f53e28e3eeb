"""The pages under the Content-Security-Policy the server really sends, in headless Chromium.

test_pages_in_chromium.py imposes an even stricter policy of its own on the pages; this test
leaves the server's header alone, so it proves that what production sends (the middleware's
policy, and the /docs exception) lets every page work: any violation is a console error.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from tests.browser.conftest import log_two_days
from tests.browser.test_pages_in_chromium import (
    ARTIFACTS,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize(
    ("path", "ready"),
    [
        ("/", "form"),
        ("/models/", "table"),
        ("/docs", ".swagger-ui .info .title"),  # Swagger UI rendered the schema: its scripts ran
    ],
)
def test_page_works_under_the_servers_csp_without_violations(
    browser,
    live_server,
    active_version,
    path,
    ready,
):
    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-eval" not in policy and ("unsafe-inline" not in policy or path == "/docs")
        page.wait_for_selector(ready, timeout=15_000)
        page.wait_for_load_state("networkidle")
        if path == "/docs":
            assert "BMI" in page.locator(".swagger-ui .info .title").inner_text()
        assert errors == [], errors
    finally:
        context.close()


@pytest.fixture
def monitored(active_version):
    """Two days of traffic with outcomes, so every monitoring chart has something to draw."""
    log_two_days(active_version, 80)
    return active_version


@pytest.mark.parametrize(
    ("path", "ready"),
    [("/monitoring/", "svg#r2-v{v}"), ("/models/{v}/", "svg#fit-chart")],
)
def test_staff_pages_work_under_the_servers_csp_without_violations(
    browser,
    live_server,
    monitored,
    staff_user,
    path,
    ready,
):
    # A real session for the staff user, handed to the browser as its cookie (no login form to drive).
    client = Client()
    client.force_login(staff_user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    url = path.format(v=monitored.version)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 200, response.status  # not the login redirect: the session was accepted
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        page.wait_for_selector(ready.format(v=monitored.version), timeout=15_000)
        page.wait_for_load_state("networkidle")
        if path == "/monitoring/":
            assert page.locator("section.monitoring-version").count() == 1
            assert page.locator(f"#v{monitored.version} svg").count() == 3
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "monitoring-desktop.png"), full_page=True)
        else:
            # Staff see the history and who trained it; the fit chart has the public training points.
            assert page.locator("#history-heading").count() == 1
            assert page.locator("#fit-chart .points circle").count() > 100
        assert errors == [], errors
    finally:
        context.close()
