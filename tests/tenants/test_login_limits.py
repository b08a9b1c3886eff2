"""Login limits on every door that takes a password or sends a reset link, per client
and per account, and a refused guess costs no password hash."""

import pytest
from django.test import Client

from tests.conftest import ACME_HOST

WRONG = {"username": "editor", "password": "guess"}


@pytest.fixture
def authentications(monkeypatch) -> list[str]:
    """Each password check a login form makes (the expensive part of a guess)."""
    from django.contrib.auth import forms

    calls: list[str] = []
    original = forms.authenticate

    def counting(request=None, **credentials):
        calls.append(credentials.get("username", ""))
        return original(request, **credentials)

    monkeypatch.setattr(forms, "authenticate", counting)
    return calls


def _client(host: str, address: str = "127.0.0.1") -> Client:
    return Client(HTTP_HOST=host, REMOTE_ADDR=address)


def test_operator_login_is_limited_and_refusals_cost_no_hash(
    db, settings, authentications
):
    settings.CMS_LOGIN_RATE_PER_USER = "3/m"
    client = _client("localhost")

    statuses = [client.post("/ops/login/", WRONG).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
    assert len(authentications) == 3  # the two refused guesses were never checked
    assert client.get("/ops/login/").status_code == 200  # showing the form is free


def test_one_account_guessed_from_many_clients_is_limited(db, settings):
    settings.CMS_LOGIN_RATE_PER_ACCOUNT = "4/m"
    statuses = [
        _client(ACME_HOST, f"198.51.100.{n}").post("/admin/login/", WRONG).status_code
        for n in range(6)
    ]
    other_account = _client(ACME_HOST, "198.51.100.99").post(
        "/admin/login/", {"username": "admin", "password": "guess"}
    )

    assert statuses == [200, 200, 200, 200, 429, 429]
    assert other_account.status_code == 200


def test_accounts_are_counted_per_tenant(db, settings):
    settings.CMS_LOGIN_RATE_PER_ACCOUNT = "2/m"
    for n in range(3):
        _client(ACME_HOST, f"198.51.100.{n}").post("/admin/login/", WRONG)
    globex = _client("globex.localhost", "198.51.100.50").post("/admin/login/", WRONG)
    assert globex.status_code == 200


def test_password_reset_requests_are_limited_per_address(db, settings, mailoutbox):
    settings.CMS_LOGIN_RATE_PER_USER = "2/m"
    client = _client(ACME_HOST)
    request = {"email": "editor@acme.example"}

    statuses = [
        client.post("/admin/password_reset/", request).status_code for _ in range(3)
    ]

    assert statuses[:2] == [302, 302]
    assert statuses[2] == 429


def test_front_end_login_is_limited(db, settings):
    settings.CMS_LOGIN_RATE_PER_USER = "2/m"
    client = _client(ACME_HOST)
    statuses = [client.post("/_util/login/", WRONG).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
