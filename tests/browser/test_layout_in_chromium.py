"""Every page at a desktop and a phone size in Chromium: screenshots into test-artifacts/, and at the
phone size no chart or form text below 11 CSS px and nothing wider than the screen (issue 15).

Walks the pages as a clinician, an operator and an engineer meet them: the form, a result, an
error, the model pages, sign-in and sign-out, the outcome page, monitoring with one day and two
days of traffic, the admin and its confirmation page, the API docs and the error pages.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from predictor.predictions.models import PredictionLog
from tests.browser import layout
from tests.browser.conftest import log_singles, log_two_days
from tests.browser.test_pages_in_chromium import (
    screenshot,
)
from tests.conftest import OPERATOR_PERMISSIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "operator-pass-123"


@pytest.fixture
def operator(django_user_model):
    """Staff who run the registry, read monitoring and record outcomes."""
    user = django_user_model.objects.create_user("operator", "op@example.com", PASSWORD, is_staff=True)
    codenames = [*OPERATOR_PERMISSIONS, "add_outcome", "view_outcome"]
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="predictor", codename__in=codenames))
    return user


@pytest.fixture
def served(active_version, train_version):
    """Two days of traffic with outcomes on the active version; one day, without outcomes, on another."""
    other = train_version(promote=False, random_state=3)
    log_two_days(active_version, 120)
    log_singles(other, [31.0])
    # A rejected version, whose list row says why.
    train_version(promote=False, threshold=0.99)
    return active_version


class Walk:
    """One browser context at one size: visits pages, screenshots them, collects layout problems."""

    def __init__(self, chromium, origin: str, label: str, viewport: dict):
        self.context = chromium.new_context(viewport=viewport, is_mobile=viewport is PHONE)
        # The strict-CSP checks are test_csp_in_chromium's (the admin's own scripts are inline);
        # here every subresource must load: the stylesheet, the favicon, the docs' files.
        self.failed: list[str] = []
        self.context.on("response", self._on_response)
        self.page = self.context.new_page()
        self.origin, self.label, self.phone = origin, label, viewport is PHONE
        self.problems: list[str] = []

    def _on_response(self, response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")
        if not response.url.startswith(self.origin):
            self.failed.append(f"from another host: {response.url}")

    def visit(self, path: str, name: str, *, status: int = 200, check: bool = True) -> None:
        response = self.page.goto(f"{self.origin}{path}")
        assert response.status == status, (path, response.status)
        self.check(name, check=check)

    def check(self, name: str, *, check: bool = True) -> None:
        screenshot(self.page, f"{name}-{self.label}")
        if not check:
            return
        found = self.page.evaluate(layout.CHART_COLLISIONS)
        if self.phone:
            found += self.page.evaluate(layout.SMALL_TEXT, layout.MIN_TEXT_PX)
            found += self.page.evaluate(layout.OVERFLOW)
        self.problems += [f"{name}: {problem}" for problem in found]

    def submit(self, button: str, fields: dict[str, str] | None = None) -> None:
        for label, value in (fields or {}).items():
            self.page.get_by_label(label, exact=False).first.fill(value)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name=button, exact=True).click()

    def focused(self) -> str:
        return self.page.evaluate("document.activeElement.id")

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize(("label", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_every_page_is_readable_and_fits_at_both_sizes(
    browser, live_server, served, operator, plain_user, label, viewport
):
    walk = Walk(browser, live_server.url, label, viewport)
    try:
        # A clinician, anonymous: the form, a result (focus moves to it), an error (focus on the field).
        walk.visit("/", "predict-form")
        walk.submit("Predict", {"Body-mass index": "27.5"})
        assert walk.focused() == "result"
        walk.check("predict-result")
        walk.submit("Predict", {"Body-mass index": "1e1"})
        assert walk.focused() == "id_bmi"
        assert walk.page.get_by_role("alert").inner_text().endswith("(e.g. 10, not 1e1).")
        walk.check("predict-error")
        walk.visit("/models/", "models")
        walk.visit(f"/models/{served.version}/", "model-detail")
        walk.visit("/models/999999/", "not-found", status=404)
        # Swagger UI is a third party's layout: screenshotted, not judged.
        walk.visit("/docs", "api-docs", check=False)
        walk.visit("/login/", "login")
        walk.submit("Sign in", {"Username": operator.username, "Password": PASSWORD})

        # An operator: monitoring, the outcome page, the admin and its confirmation page.
        walk.visit("/monitoring/", "monitoring")
        assert walk.page.locator(".status-ok, .status-alert, .status-pending").count() >= 2
        walk.visit("/outcomes/", "outcome-find")
        single = PredictionLog.objects.filter(channel="web").latest("pk")
        walk.submit("Find", {"Reference": f"#{single.pk}"})
        walk.check("outcome-prediction")
        walk.submit("Record outcome", {"Observed progression": "181"})
        assert walk.focused() == "confirmation"
        walk.check("outcome-recorded")
        walk.visit("/admin/", "admin-index")
        walk.visit("/admin/predictor/modelversion/", "admin-versions")
        walk.visit(f"/admin/predictor/modelversion/{served.version}/change/", "admin-version")
        walk.visit("/admin/predictor/modelversion/rollback/", "admin-confirm-rollback")
        walk.visit("/logout/", "logout")
        walk.submit("Sign out")
        walk.check("signed-out")

        # A signed-in account without the permission gets the site's 403 page.
        walk.visit("/login/", "login-again", check=False)
        walk.submit("Sign in", {"Username": plain_user.username, "Password": "clinician-pass-123"})
        walk.visit("/outcomes/", "forbidden", status=403)
        assert walk.failed == []
    finally:
        walk.close()
    assert walk.problems == [], "\n".join(walk.problems)
