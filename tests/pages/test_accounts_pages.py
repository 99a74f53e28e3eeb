"""Signing in and out on the site's own pages (not the admin's)."""

import re


def test_anonymous_visitors_see_a_sign_in_link_that_comes_back(client, db):
    html = client.get("/models/").content.decode()
    assert re.search(r'<a href="/login/\?next=/models/">Sign in</a>', html)


def test_get_logout_shows_a_sign_out_button_instead_of_405(client, plain_user):
    client.force_login(plain_user)
    response = client.get("/logout/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'method="post" action="/logout/"' in html and ">Sign out</button>" in html


def test_signing_out_confirms_it(client, plain_user):
    client.force_login(plain_user)
    response = client.post("/logout/")
    assert response.status_code == 200
    assert "You are signed out" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_in_fields_use_the_site_style(client, db):
    html = client.get("/login/").content.decode()
    assert re.search(r'<div class="field">\s*<label for="id_username">', html)


def test_favicon_ico_leads_to_the_site_icon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/predictor/favicon.svg")
    assert client.get(response["Location"]).status_code == 200
