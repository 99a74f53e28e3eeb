"""/healthz and /readyz, answered by predictor.middleware before host checks and the database."""

import pytest


def test_healthz_answers_without_the_database(client):
    # No django_db mark: any database query here would fail the test.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("host", ["10.0.3.17", "10.0.3.17:8000", "not-allowed.example.com", "[::1]"])
def test_healthz_answers_whatever_the_host_header(client, host):
    response = client.get("/healthz", HTTP_HOST=host)

    assert response.status_code == 200


def test_an_unlisted_host_is_still_refused_elsewhere(client, db):
    assert client.get("/api/v1/models", HTTP_HOST="10.0.3.17").status_code == 400


@pytest.mark.django_db
def test_readyz_is_200_with_the_active_version(client, active_version):
    response = client.get("/readyz", HTTP_HOST="10.0.3.17")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model_version": active_version.version}


@pytest.mark.django_db
def test_readyz_is_503_with_a_reason_when_no_version_is_active(client, train_version):
    train_version(promote=False)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "no model version is active"}
