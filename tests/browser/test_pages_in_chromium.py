"""The pages in a real browser: headless Chromium (Debian's) driven by Playwright, against a live server.

Fails, never skips, when /usr/bin/chromium is missing: `make test` installs it when run as root.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from predictor.models import PredictionLog

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
# What the pages must survive in production: nothing inline, nothing from another host.
STRICT_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class PageWatch:
    """Records every request, console error and uncaught page error of one browser context."""

    def __init__(self, context, origin: str):
        self.origin = origin
        self.context = context
        self.requests: list[str] = []
        self.failed_resources: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("response", self._on_response)
        context.route("**/*", self._with_strict_csp)

    def _on_response(self, response):
        # Documents may be 400/404/503 on purpose (the tests check those); subresources never.
        if response.request.resource_type != "document" and response.status >= 400:
            self.failed_resources.append(f"{response.status} {response.url}")

    def _with_strict_csp(self, route):
        # Same-origin responses get the strict policy, so any inline style or script shows up as a
        # console error; other hosts are not fetched at all (and fail the test below).
        if not route.request.url.startswith(self.origin):
            route.abort()
            return
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    def watch(self, page):
        page.on("console", lambda message: self._on_console(page, message))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        return page

    def _on_console(self, page, message):
        if message.type != "error":
            return
        # Chromium reports a document's own 4xx/5xx status as a console error; the status is
        # asserted by each test, and failed subresources are caught in _on_response.
        if message.text.startswith("Failed to load resource") and message.location.get("url") == page.url:
            return
        self.console_errors.append(message.text)

    def close(self):
        self.context.unroute_all(behavior="ignoreErrors")
        self.context.close()

    def assert_clean(self):
        foreign = [url for url in self.requests if urlsplit(url).netloc != urlsplit(self.origin).netloc]
        assert foreign == [], f"loaded from another host: {foreign}"
        assert self.failed_resources == [], self.failed_resources
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fits_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def predict(page, value: str) -> None:
    page.get_by_label("Body-mass index (BMI)").fill(value)
    with page.expect_navigation():
        page.get_by_role("button", name="Predict").click()


@pytest.mark.parametrize(("label", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_predict_page_in_chromium(browser, live_server, active_version, label, viewport):
    context = browser.new_context(viewport=viewport, is_mobile=label == "phone")
    watch = PageWatch(context, live_server.url)
    page = watch.watch(context.new_page())
    try:
        response = page.goto(f"{live_server.url}/")
        assert response.status == 200
        assert page.title().startswith("Predict")
        assert page.get_by_role("link", name="Predict").get_attribute("aria-current") == "page"
        # The stylesheet applied: the header is the brand colour, not the browser default.
        assert page.locator(".site-header").evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(15, 45, 68)"
        screenshot(page, f"predict-form-{label}")

        predict(page, "27.5")
        expected = active_version.slope * 27.5 + active_version.intercept
        assert page.get_by_test_id("prediction").inner_text() == f"{expected:.1f}"
        assert page.get_by_test_id("model-version").inner_text() == f"v{active_version.version}"
        chart = page.locator("svg.chart-fit")
        assert chart.get_attribute("role") == "img"
        assert "BMI 27.5" in chart.locator("title").text_content()
        assert chart.locator(".points circle").count() == len(active_version.training_sample)
        patient = chart.locator("circle.patient-point")
        assert patient.count() == 1
        chart_box, point_box = chart.bounding_box(), patient.bounding_box()
        assert (
            chart_box["x"] <= point_box["x"]
            and point_box["x"] + point_box["width"] <= chart_box["x"] + chart_box["width"]
        )
        assert chart_box["width"] <= viewport["width"]
        assert fits_width(page)
        screenshot(page, f"predict-result-{label}")

        predict(page, "abc")
        error = page.locator("#id_bmi-error")
        assert error.is_visible()
        assert "Enter the BMI as a number" in error.inner_text()
        field = page.get_by_label("Body-mass index (BMI)")
        assert field.get_attribute("aria-invalid") == "true"
        assert "id_bmi-error" in field.get_attribute("aria-describedby")
        screenshot(page, f"predict-error-{label}")

        predict(page, "95")
        assert "between 10 and 80" in page.locator("#id_bmi-error").inner_text()
        watch.assert_clean()
    finally:
        watch.close()
    logs = list(PredictionLog.objects.values_list("bmi", "channel", "size", "model_version_id"))
    assert logs == [([27.5], "web", 1, active_version.version)]


@pytest.mark.parametrize(("label", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_model_pages_in_chromium(browser, live_server, train_version, active_version, label, viewport):
    rejected = train_version(promote=False, threshold=0.99)
    context = browser.new_context(viewport=viewport, is_mobile=label == "phone")
    watch = PageWatch(context, live_server.url)
    page = watch.watch(context.new_page())
    try:
        assert page.goto(f"{live_server.url}/models/").status == 200
        table = page.get_by_role("table", name="Model versions, newest first")
        assert table.is_visible()
        assert table.get_by_role("cell", name=f"{active_version.r2_test:.2f}", exact=False).first.is_visible()
        assert table.get_by_role("link", name=f"v{rejected.version}", exact=True).is_visible()
        assert fits_width(page)
        screenshot(page, f"models-{label}")

        with page.expect_navigation():
            page.get_by_role("link", name=f"v{active_version.version}", exact=True).click()
        assert page.get_by_role("heading", level=1).inner_text() == f"Model version {active_version.version}"
        assert page.get_by_role(
            "img", name=f"Training loss by epoch, model version {active_version.version}"
        ).is_visible()
        assert page.locator("svg.chart-loss polyline").count() == 1
        # The public page leaves out the promotion history (who changed the registry and why): staff only.
        assert page.get_by_role("table", name="Registry changes involving").count() == 0
        assert fits_width(page)
        screenshot(page, f"model-detail-{label}")

        assert page.goto(f"{live_server.url}/models/999999/").status == 404
        watch.assert_clean()
    finally:
        watch.close()


def test_no_active_model_page_in_chromium(browser, live_server, transactional_db):
    context = browser.new_context(viewport=DESKTOP)
    watch = PageWatch(context, live_server.url)
    page = watch.watch(context.new_page())
    try:
        assert page.goto(f"{live_server.url}/").status == 503
        assert page.get_by_role("alert").get_by_role("heading").inner_text() == "No model is serving"
        screenshot(page, "no-model-desktop")
        watch.assert_clean()
    finally:
        watch.close()
