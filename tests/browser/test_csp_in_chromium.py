"""The pages under the Content-Security-Policy the server really sends, in headless Chromium.

test_pages_in_chromium.py imposes an even stricter policy of its own on the pages; this test
leaves the server's header alone, so it proves that what production sends (the middleware's
policy, and the /docs exception) lets every page work: any violation is a console error.
"""

from __future__ import annotations

import pytest

from tests.browser.test_pages_in_chromium import browser  # noqa: F401 - the shared Chromium fixture

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
    browser,  # noqa: F811
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
