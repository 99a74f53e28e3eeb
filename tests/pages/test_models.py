"""The model registry pages: the list of versions and one version's page."""

import re

import pytest
from django.urls import reverse

from predictor.ml.data import Dataset, load_diabetes_bmi
from predictor.ml.sgd import r2_standard_error
from predictor.models import ModelVersion
from predictor.registry import services
from predictor.web import views
from predictor.web.charts import PRIVATE_DATA_NOTE

LIST_URL = reverse("predictor:model-list")


def test_list_shows_each_version_with_metrics_status_and_dates(client, train_version):
    active = train_version(promote=True)
    rejected = train_version(promote=False, threshold=0.99)
    response = client.get(LIST_URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<caption" in html and '<th scope="col" class="num">Held-out R² <span class="th-note">' in html
    for version in (active, rejected):
        assert f'<a href="/models/{version.version}/">v{version.version}</a>' in html
        # Two decimals and the standard error on the held-out rows, not four spurious decimals.
        se = r2_standard_error(version.r2_test, version.n_test)
        assert f'{version.r2_test:.2f} <span class="muted">± {se:.2f}</span>' in html
        assert f"{version.r2_test:.4f}" not in html
        assert f'<td class="num">{version.mae_test:.1f}</td>' in html
        assert version.created_at.strftime("%Y-%m-%d %H:%M") in html
    assert '<span class="status status-active">Active</span>' in html
    assert re.search(
        r'<span class="status status-rejected">Rejected</span>\s*<span class="status-reason">R² not above its gate',
        html,
    )
    assert '<td class="num">0.99</td>' in html  # the rejected version's gate
    assert active.promoted_at.strftime("%Y-%m-%d %H:%M") in html
    assert "style=" not in html


@pytest.mark.django_db
def test_list_without_versions_says_how_to_train(client):
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert "No model has been trained yet" in response.content.decode()


def test_list_paginates(client, train_version, monkeypatch):
    monkeypatch.setattr(views, "VERSIONS_PER_PAGE", 1)
    first = train_version(promote=True)
    second = train_version(promote=False)
    html = client.get(LIST_URL).content.decode()
    assert f">v{second.version}</a>" in html and f">v{first.version}</a>" not in html
    assert 'href="?page=2"' in html
    html = client.get(LIST_URL, {"page": 2}).content.decode()
    assert f">v{first.version}</a>" in html


def test_detail_shows_metrics_hyperparameters_fingerprint_history_and_charts(client, train_version, staff_user):
    first = train_version(promote=True)
    second = train_version(promote=True, random_state=1)
    services.model_version_rollback(actor_name="dr-ops", reason="bad calibration <b>")
    client.force_login(staff_user)  # the history (who and why) is for staff
    response = client.get(first.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Model version" in html and f"{first.version}</h1>" in html
    assert f"{first.r2_test:.4f}" in html
    assert f"{first.mae_test:.1f}" in html
    assert first.data_fingerprint in html
    assert '<th scope="row">learning_rate</th>' in html
    assert '<th scope="row">random_state</th>' in html
    # History: promoted by training, replaced by the second version, then rolled back to.
    assert html.count("<td>Promote</td>") == 2
    assert "<td>Rollback</td>" in html
    assert f'href="/models/{second.version}/">v{second.version}</a>' in html
    assert "dr-ops" in html
    assert "bad calibration &lt;b&gt;" in html
    assert 'class="chart chart-fit"' in html and 'class="chart chart-loss"' in html
    assert 'aria-labelledby="fit-chart-title fit-chart-desc"' in html
    assert 'aria-labelledby="loss-chart-title loss-chart-desc"' in html
    assert '<polyline class="loss-line"' in html
    assert 'class="patient-point"' not in html
    assert "style=" not in html


def test_detail_of_a_rejected_version_says_it_failed_the_gate(client, train_version, staff_user):
    rejected = train_version(promote=False, threshold=0.99)
    client.force_login(staff_user)
    assert rejected.status == ModelVersion.Status.REJECTED
    html = client.get(rejected.get_absolute_url()).content.decode()
    assert "Failed the gate" in html
    assert "never been promoted" in html


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/models/99999/", "/models/abc/", "/models/-1/"])
def test_unknown_version_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_detail_hides_usernames_history_and_reasons_from_the_public(client, train_version, staff_user):
    first = services.model_version_train(
        dataset=load_diabetes_bmi(), random_state=0, promote=True, user=staff_user
    ).version
    train_version(promote=True, random_state=1)
    services.model_version_rollback(actor_name="dr-ops", reason="bad calibration")

    html = client.get(first.get_absolute_url()).content.decode()

    assert "Promotion history" not in html
    assert "dr-ops" not in html and "bad calibration" not in html
    assert " by staff" not in html
    assert f"{first.r2_test:.4f}" in html  # the metrics stay public


def test_a_version_trained_on_private_data_shows_no_training_points(client, train_version, tmp_path, diabetes):
    private = Dataset(
        name="csv:clinic.csv",
        X_train=diabetes.X_train,
        y_train=diabetes.y_train,
        X_test=diabetes.X_test,
        y_test=diabetes.y_test,
    )
    version = train_version(dataset=private, promote=True)
    assert version.training_sample == []

    detail = client.get(version.get_absolute_url()).content.decode()
    assert PRIVATE_DATA_NOTE in detail
    assert 'class="fit-line"' in detail
    assert '<g class="points" aria-hidden="true"></g>' in detail  # no patient's point drawn

    prediction = client.post(reverse("predictor:predict"), {"bmi": "27.5"}, follow=True).content.decode()
    assert PRIVATE_DATA_NOTE in prediction
    assert 'class="patient-point"' in prediction and 'class="fit-line"' in prediction
    assert '<g class="points" aria-hidden="true"></g>' in prediction


def test_detail_shows_the_interval_figures_coverages_and_the_band(client, train_version):
    version = train_version(promote=True)
    html = client.get(version.get_absolute_url()).content.decode()
    figures = html[html.index('data-testid="interval-figures"') :]

    assert 'data-testid="coverage-test">100 %<' in figures
    assert f'data-testid="coverage-cv">{round(version.coverage_cv * 100, 1):g} %<' in figures
    assert f"{version.residual_std:.2f}" in figures and "t (420 df)" in figures
    assert "18.0–42.2" in figures and "25–346" in figures
    assert 'class="fit-band"' in html and "95 % prediction interval</li>" in html
    assert "it is not a range patients fall in" in html  # what MAE means, beside it
