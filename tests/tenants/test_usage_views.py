"""Usage pages over HTTP: each tenant's admin shows its own numbers only; operators
see every tenant on the public host, sortable."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tenants.metering import flush
from tests.conftest import ACME_HOST, GLOBEX_HOST

pytestmark = pytest.mark.django_db


def _admin_client(host: str, password: str) -> Client:
    client = Client(HTTP_HOST=host)
    response = client.post("/admin/login/", {"username": "admin", "password": password})
    assert response.status_code == 302
    return client


def _used(body: str, label: str) -> int:
    match = re.search(
        rf"<td>{re.escape(label)}</td>\s*<td class=\"used\">(\d+)</td>", body
    )
    assert match, f"no line {label!r} in the page"
    return int(match.group(1))


@pytest.fixture
def traffic(acme_client, globex_client):
    """acme: 3 page reads; globex: 17 page reads and 2 API reads (flushed)."""
    for _ in range(3):
        acme_client.get("/")
    for _ in range(17):
        globex_client.get("/")
    for _ in range(2):
        globex_client.get("/api/v2/pages/")
    flush.flush_usage()


def test_tenant_sees_its_usage_against_the_plan_and_a_chart(traffic):
    client = _admin_client(ACME_HOST, "acme-admin-demo")

    response = client.get("/admin/usage/")

    assert response.status_code == 200
    body = response.content.decode()
    assert _used(body, "Public page reads") == 3
    assert _used(body, "API reads") == 0
    assert "3,000 / minute" in body  # acme's plan (pro)
    assert "<svg" in body and 'class="usage-chart"' in body
    assert body.count('class="served"') == 30


def test_the_usage_page_shows_the_plans_features(acme_client):
    client = _admin_client(ACME_HOST, "acme-admin-demo")
    body = client.get("/admin/usage/").content.decode()

    def value(name: str) -> str:
        match = re.search(
            rf'<tr data-feature="{name}"><td>[^<]+</td><td class="value">([^<]+)</td>',
            body,
        )
        assert match, f"no feature {name} on the page"
        return match.group(1)

    assert value("custom_domains") == "3"  # pro
    assert value("hsts") == "included"
    globex = _admin_client(GLOBEX_HOST, "globex-admin-demo")
    body = globex.get("/admin/usage/").content.decode()
    assert value("custom_domains") == "1"  # starter
    assert value("hsts") == "not included"


def test_a_tenant_cannot_see_another_tenants_usage(traffic):
    acme = _admin_client(ACME_HOST, "acme-admin-demo")
    globex = _admin_client(GLOBEX_HOST, "globex-admin-demo")

    acme_page = acme.get("/admin/usage/?tenant=globex&schema=globex").content.decode()
    globex_page = globex.get("/admin/usage/").content.decode()

    assert _used(acme_page, "Public page reads") == 3
    assert _used(globex_page, "Public page reads") == 17
    assert _used(globex_page, "API reads") == 2
    assert "Globex" not in acme_page
    # acme's admin login does not work on globex's host either
    login = Client(HTTP_HOST=GLOBEX_HOST).post(
        "/admin/login/", {"username": "admin", "password": "acme-admin-demo"}
    )
    assert login.status_code == 200  # the form again, not a redirect


def test_usage_page_needs_an_admin_login(acme_client):
    response = acme_client.get("/admin/usage/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_usage_is_in_the_admin_menu():
    client = _admin_client(ACME_HOST, "acme-admin-demo")

    body = client.get("/admin/").content.decode()

    assert "/admin/usage/" in body


# --- operators ------------------------------------------------------------------------


def _operator(is_staff: bool = True) -> Client:
    user = get_user_model().objects.create_user(
        "operator", password="operator-test-pw", is_staff=is_staff
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def _table(body: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(<td>.*?)</tr>", body)
    return [re.findall(r"<td>(.*?)</td>", row) for row in rows]


def test_operators_see_every_tenant_sorted(traffic):
    client = _operator()

    response = client.get("/ops/usage/?sort=public_reads&dir=desc")

    assert response.status_code == 200
    rows = _table(response.content.decode())
    slugs = [row[0] for row in rows]
    assert slugs[:2] == ["globex", "acme"]
    assert rows[0][2] == "17" and rows[1][2] == "3"

    ascending = _table(client.get("/ops/usage/?sort=slug&dir=asc").content.decode())
    assert [row[0] for row in ascending] == sorted(slugs)


def test_operator_page_rejects_an_unknown_sort_column():
    response = _operator().get("/ops/usage/?sort=password")

    assert response.status_code == 400
    assert b"Sort by one of slug" in response.content


def test_operator_page_needs_a_staff_login(db):
    anonymous = Client(HTTP_HOST="localhost").get("/ops/usage/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/ops/login/")

    not_staff = _operator(is_staff=False).get("/ops/usage/")
    assert not_staff.status_code == 302


def test_operator_login_form_logs_in(db):
    get_user_model().objects.create_user(
        "operator", password="operator-test-pw", is_staff=True
    )
    client = Client(HTTP_HOST="localhost")
    assert client.get("/ops/login/").status_code == 200

    response = client.post(
        "/ops/login/?next=/ops/usage/",
        {"username": "operator", "password": "operator-test-pw", "next": "/ops/usage/"},
    )

    assert response.status_code == 302
    assert client.get("/ops/usage/").status_code == 200


def test_operator_page_is_not_on_tenant_hosts(acme_client):
    response = acme_client.get("/ops/usage/", follow=True)

    assert response.status_code == 404
