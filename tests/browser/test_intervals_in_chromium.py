"""The prediction interval and the subdued extrapolation, as a clinician's browser shows them."""

from __future__ import annotations

import pytest

from tests.browser.test_pages_in_chromium import PageWatch, fits_width, predict, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWPORTS = [("desktop", {"width": 1366, "height": 900}), ("phone", {"width": 390, "height": 844})]


def _visible_inside(page, locator) -> bool:
    """The element is shown and lies within the page's width (nothing cut off on a phone)."""
    box = locator.bounding_box()
    width = page.evaluate("document.documentElement.clientWidth")
    return locator.is_visible() and box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1


@pytest.mark.parametrize(("label", "viewport"), VIEWPORTS)
def test_result_shows_the_band_and_the_worded_interval(browser, live_server, active_version, label, viewport):
    context = browser.new_context(viewport=viewport, is_mobile=label == "phone")
    watch = PageWatch(context, live_server.url)
    page = watch.watch(context.new_page())
    try:
        page.goto(f"{live_server.url}/")
        predict(page, "27.4")

        interval = page.get_by_test_id("interval")
        assert interval.inner_text() == "95 % of patients with this BMI are expected between 39 and 287."
        assert _visible_inside(page, interval)
        band = page.locator("svg.chart-fit polygon.fit-band")
        assert band.count() == 1 and _visible_inside(page, band)
        # The band is shaded, not invisible: a fill with some opacity, behind the points.
        assert float(band.evaluate("e => getComputedStyle(e).fillOpacity")) > 0
        assert page.get_by_test_id("band-legend").inner_text().strip() == "95 % prediction interval"
        assert "from 25 to 346 among those patients" in page.get_by_test_id("about").inner_text()
        assert fits_width(page)
        screenshot(page, f"interval-result-{label}")

        page.goto(f"{live_server.url}{active_version.get_absolute_url()}")
        assert page.locator("svg#fit-chart polygon.fit-band").count() == 1
        assert page.get_by_test_id("coverage-test").inner_text() == "100 %"
        assert fits_width(page)
        watch.assert_clean()
    finally:
        watch.close()


@pytest.mark.parametrize(("label", "viewport"), VIEWPORTS)
@pytest.mark.parametrize(("bmi", "reason"), [("11", "a negative score"), ("50", "above the highest score")])
def test_an_estimate_outside_the_data_is_subdued_and_explained(
    browser,
    live_server,
    active_version,
    label,
    viewport,
    bmi,
    reason,
):
    context = browser.new_context(viewport=viewport, is_mobile=label == "phone")
    watch = PageWatch(context, live_server.url)
    page = watch.watch(context.new_page())
    try:
        page.goto(f"{live_server.url}/")
        predict(page, bmi)

        assert page.locator(".result-number").count() == 0  # no big confident figure
        heading = page.get_by_test_id("no-estimate")
        assert heading.inner_text() == f"No reliable estimate for BMI {bmi} kg/m²"
        number = page.get_by_test_id("prediction")
        expected = active_version.slope * float(bmi) + active_version.intercept
        assert number.inner_text() == f"{expected:.1f}"
        # Subdued: no larger than the text around it, and grey rather than the patient orange.
        body_size = float(page.locator("body").evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
        assert float(number.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) <= body_size
        assert number.evaluate("e => getComputedStyle(e).color") == "rgb(74, 90, 106)"
        cautions = page.get_by_test_id("cautions").inner_text()
        assert "outside the BMIs this model was trained on (18.0 to 42.2 kg/m²)" in cautions
        assert reason in cautions
        assert _visible_inside(page, heading)
        assert fits_width(page)
        screenshot(page, f"interval-subdued-bmi{bmi}-{label}")
        watch.assert_clean()
    finally:
        watch.close()
