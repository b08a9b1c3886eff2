"""The client's address (tenants.request_path.client_address): X-Forwarded-For is
believed only from trusted proxies, read right to left; every per-client decision and
record (login limits, the /metrics allow-list, the access log) uses it."""

import logging

import pytest
from django.test import Client, RequestFactory, override_settings

from tenants.request_path.client_address import client_ip
from tests.conftest import ACME_HOST

PROXY = "10.0.0.5"


def _ip(remote: str, forwarded: str | None = None) -> str:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **extra))


@override_settings(CMS_TRUSTED_PROXIES=[])
def test_without_trusted_proxies_the_header_is_ignored():
    assert _ip("203.0.113.9", "198.51.100.1") == "203.0.113.9"


@override_settings(CMS_TRUSTED_PROXIES=["10.0.0.0/8"])
@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        # the proxy appended the client
        (PROXY, "203.0.113.9", "203.0.113.9"),
        # a client's forged entry stays to the left of what the proxy appended
        (PROXY, "1.2.3.4, 203.0.113.9", "203.0.113.9"),
        # two trusted hops are skipped
        (PROXY, "203.0.113.9, 10.9.9.9", "203.0.113.9"),
        # a request not from a trusted proxy: its header proves nothing
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
        # garbage from the client: the proxy's own address is what is known
        (PROXY, "not-an-address", PROXY),
        (PROXY, "", PROXY),
        # ports and IPv6 brackets as some proxies write them
        (PROXY, "[2001:db8::1]:443", "2001:db8::1"),
        (PROXY, "203.0.113.9:51234", "203.0.113.9"),
        # every hop trusted: the leftmost
        (PROXY, "10.1.1.1, 10.2.2.2", "10.1.1.1"),
    ],
)
def test_forwarded_for_is_read_right_to_left_skipping_trusted_hops(
    remote, forwarded, expected
):
    assert _ip(remote, forwarded) == expected


@override_settings(CMS_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_wsgi_environ_is_understood_too():
    environ = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert client_ip(environ) == "203.0.113.9"


def test_a_bad_trusted_proxy_setting_stops_the_process(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from cms_project.settings.env import env_networks

    monkeypatch.setenv("CMS_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")
    with pytest.raises(ImproperlyConfigured, match="CMS_TRUSTED_PROXIES"):
        env_networks("CMS_TRUSTED_PROXIES", [])


@override_settings(
    CMS_TRUSTED_PROXIES=["10.0.0.0/8"],
    CMS_METRICS_TOKEN="",
    CMS_METRICS_ALLOW_IPS=["192.0.2.0/24"],
)
def test_metrics_allow_list_sees_the_client_behind_the_proxy(db):
    client = Client(HTTP_HOST="localhost", REMOTE_ADDR=PROXY)
    allowed = client.get("/metrics", HTTP_X_FORWARDED_FOR="192.0.2.7")
    outside = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    forged = Client(HTTP_HOST="localhost", REMOTE_ADDR="203.0.113.9").get(
        "/metrics", HTTP_X_FORWARDED_FOR="192.0.2.7"
    )
    assert allowed.status_code == 200
    assert outside.status_code == 403
    assert forged.status_code == 403


@override_settings(CMS_TRUSTED_PROXIES=["10.0.0.0/8"], CMS_LOGIN_RATE_PER_USER="3/m")
def test_login_limit_counts_each_client_behind_the_proxy_apart(db):
    wrong = {"username": "editor", "password": "guess"}
    client = Client(HTTP_HOST=ACME_HOST, REMOTE_ADDR=PROXY)

    def attempt(address: str) -> int:
        return client.post(
            "/admin/login/", wrong, HTTP_X_FORWARDED_FOR=address
        ).status_code

    guesser = [attempt("203.0.113.9") for _ in range(4)]
    neighbour = attempt("198.51.100.4")

    assert guesser == [200, 200, 200, 429]
    assert neighbour == 200  # the proxy's other clients are not locked out


@override_settings(CMS_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_access_log_records_the_client_address(db, caplog):
    caplog.set_level(logging.INFO, logger="cms.access")
    Client(HTTP_HOST=ACME_HOST, REMOTE_ADDR=PROXY).get(
        "/", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    (event,) = [r for r in caplog.records if r.name == "cms.access"]
    assert event.client_ip == "203.0.113.9"
