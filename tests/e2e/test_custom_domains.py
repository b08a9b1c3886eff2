"""Custom domains end to end: a tenant's admin adds ``shop.example.test`` in the
browser, its TXT record appears on the test DNS server, the domain verifies, and
``https://shop.example.test`` (resolved to 127.0.0.1) serves the tenant through Caddy
with a certificate pebble issued on the first handshake. Unverified and foreign names
get no certificate and are never served; the plan's count holds; other domains
redirect to the primary.

Slow (real pebble, Caddy, gunicorn and Chromium): one pebble and one Caddy serve the
whole session (``tls_edge`` in tests/conftest.py).
"""

import re
import ssl
import time

import pytest
from django.db import connection

from cms_project import devstack
from tenants.domains import ownership
from tenants.models import Domain, Plan, Tenant
from tenants.provisioning.creation import tenant_create, tenant_delete
from tenants.tariffs.plans import plan_create
from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, STEP_TIMEOUT_MS, orm_access
from tests.integration import process_env

pytestmark = pytest.mark.slow

SLUG = "e2edomains"
PLATFORM_HOST = "e2edomains.localhost"
PLAN = "e2e-domains"
ADMIN_PASSWORD = "e2e-domains-admin-1"
SHOP = "shop.example.test"
WWW = "www.shop.example.test"


def _drop() -> None:
    if Tenant.objects.filter(schema_name=SLUG).exists():
        tenant_delete(slug=SLUG, confirm=True)
    Plan.objects.filter(name=PLAN).delete()
    connection.set_schema_to_public()


@pytest.fixture(scope="module")
def domains_tenant(django_db_setup, django_db_blocker):
    """A committed tenant on a plan with two custom domains and HSTS."""
    with django_db_blocker.unblock():
        _drop()
        plan_create(
            name=PLAN,
            limits={},
            base="pro",
            title="E2E domains",
            features={"custom_domains": 2, "hsts": 1},
        )
        tenant_create(
            slug=SLUG,
            name="Domains Shop",
            domains=[PLATFORM_HOST],
            plan=PLAN,
            admin_email=f"admin@{PLATFORM_HOST}",
            admin_password=ADMIN_PASSWORD,
        )
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        _drop()


@pytest.fixture(scope="module")
def app(domains_tenant, tls_edge, tls_edge_app_port, tmp_path_factory):
    """The product on gunicorn behind Caddy: Caddy's hop trusted for
    X-Forwarded-Proto, custom domains on Caddy's HTTPS port."""
    process = devstack.start_gunicorn(
        tls_edge_app_port,
        env=process_env(
            DJANGO_SETTINGS_MODULE="tests.e2e.settings",
            GUNICORN_ACCESSLOG="/dev/null",
            CMS_TRUSTED_PROXIES="127.0.0.1",
            # a worker that misses a Redis read of the host map's generation (a busy
            # machine) keeps its map at most this long before reloading it
            CMS_TENANT_MAP_MAX_STALE_SECONDS="1",
            CMS_CUSTOM_DOMAIN_PORT=str(tls_edge.https_port),
            CMS_SITE_PORT=str(tls_edge_app_port),
        ),
        log_path=tmp_path_factory.mktemp("domains-gunicorn") / "gunicorn.log",
        workers=2,
    )
    yield tls_edge_app_port
    devstack.stop_process(process)


@pytest.fixture(scope="module")
def page(chromium, app):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()
    finally:
        playwright.stop()


def admin_url(port: int, path: str) -> str:
    return f"http://{PLATFORM_HOST}:{port}{path}"


def domain_row(name: str) -> Domain:
    return Domain.objects.get(domain=name)


def test_an_admin_brings_a_domain_and_it_serves_over_https(
    page, app, tls_edge, dns_server, django_db_blocker
):
    from playwright.sync_api import expect

    # the admin adds the domain on Settings -> Domains
    page.goto(admin_url(app, "/admin/login/"))
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(admin_url(app, "/admin/domains/"))
    page.get_by_label("Domain").fill(SHOP)
    page.get_by_label("DNS TXT record").check()
    page.get_by_role("button", name="Add domain").click()
    row = page.locator(f'tr[data-domain="{SHOP}"]')
    expect(row.locator(".status")).to_contain_text("pending")
    expect(row.locator(".record-name")).to_have_text(f"_cms-challenge.{SHOP}")
    token = row.locator(".token").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "custom-domains-pending.png"), full_page=True)

    # pending: no certificate, not served
    with pytest.raises(ssl.SSLError):
        tls_edge.tls_handshake(SHOP)

    # the owner publishes the record; "Verify now"
    dns_server.publish_txt(f"_cms-challenge.{SHOP}", token)
    row.get_by_role("button", name="Verify now").click()
    expect(page.locator(f'tr[data-domain="{SHOP}"] .status')).to_contain_text(
        "verified"
    )
    page.locator(f'tr[data-domain="{SHOP}"]').get_by_role(
        "button", name="Make primary"
    ).click()
    # the admin moved to the primary domain, behind Caddy: the browser cannot follow
    # (it resolves only *.localhost), the server's side is what counts here
    with orm_access(django_db_blocker):
        shop = domain_row(SHOP)
        assert (shop.status, shop.is_primary) == ("verified", True)

    # https://shop.example.test: pebble's certificate, the tenant's home page
    certificate = tls_edge.tls_handshake(SHOP)
    issuer = dict(item[0] for item in certificate["issuer"])
    assert "Pebble" in issuer["commonName"]
    assert ("DNS", SHOP) in certificate["subjectAltName"]
    status, headers, body = tls_edge.https_get(SHOP, "/")
    assert status == 200
    assert "Domains Shop" in body
    assert "Strict-Transport-Security" not in headers  # not opted in yet

    # plain HTTP on Caddy goes to HTTPS, keeping the path and query
    status, headers = tls_edge.http_get(SHOP, "/a/b?c=d")
    assert status == 301
    assert headers["Location"] == f"https://{SHOP}:{tls_edge.https_port}/a/b?c=d"


def _wait_until_allowed(app_port: int, name: str, timeout: float = 10) -> None:
    """Poll Caddy's ask endpoint until the app allows ``name``: every worker of the
    pool has seen the change (the host map's generation is checked every 0.5 s)."""
    import http.client
    import time

    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", app_port, timeout=5)
        conn.request("GET", f"/_tls/ask?domain={name}", headers={"Host": "127.0.0.1"})
        status = conn.getresponse().status
        conn.close()
        if status == 200:
            # one worker has seen the change; any other sees it at its next request
            # once the check interval has passed since its last look
            time.sleep(1)
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the ask endpoint still refuses {name} ({status})")
        time.sleep(0.5)


def test_other_domains_redirect_to_the_primary_and_hsts_is_sent_once_opted_in(
    app, tls_edge, dns_server, django_db_blocker
):
    import http.client

    with orm_access(django_db_blocker):
        tenant = Tenant.objects.get(schema_name=SLUG)
        www = ownership.domain_add(tenant=tenant, host=WWW)
        dns_server.publish_txt(f"_cms-challenge.{WWW}", www.verification_token)
        ownership.domain_verify(domain=www)
        ownership.tenant_set_hsts(tenant=tenant, enabled=True)

    # a verified domain reaches every worker within the host map's check interval
    _wait_until_allowed(app, WWW)
    deadline = time.monotonic() + 20
    while True:
        try:
            status, headers, body = tls_edge.https_get(WWW, "/some/page/?q=1")
        except ssl.SSLError:
            # Caddy asked a worker that had not seen the domain yet: no certificate
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        if status != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 301, (status, headers, body[:300])
    assert headers["Location"] == f"https://{SHOP}:{tls_edge.https_port}/some/page/?q=1"

    # the platform host, straight to the pool, sends visitors to the primary too
    connection = http.client.HTTPConnection("127.0.0.1", app, timeout=10)
    connection.request("GET", "/x?y=z", headers={"Host": f"{PLATFORM_HOST}:{app}"})
    answer = connection.getresponse()
    assert answer.status == 301
    assert answer.getheader("Location") == (
        f"https://{SHOP}:{tls_edge.https_port}/x?y=z"
    )
    connection.close()

    # HSTS: the app believes Caddy's X-Forwarded-Proto (a trusted hop; others'
    # are dropped: tests/tenants/test_domains.py)
    # (a worker that could not ask Redis for the host map's generation keeps its map
    # for a while, tenants.registry.resolution: allow the change to reach it)
    deadline = time.monotonic() + 15
    while True:
        status, headers, _ = tls_edge.https_get(SHOP, "/")
        if "Strict-Transport-Security" in headers or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    # the plan's count (two custom domains) is used up
    with orm_access(django_db_blocker):
        from tenants.tariffs.features import FeatureLimitReached

        with pytest.raises(FeatureLimitReached, match="allows 2 domains"):
            ownership.domain_add(tenant=tenant, host="third.example.test")
        assert not Domain.objects.filter(domain="third.example.test").exists()


def test_unverified_and_foreign_names_get_no_certificate_and_are_never_served(
    app, tls_edge, django_db_blocker
):
    import http.client

    with orm_access(django_db_blocker):
        other = Tenant.objects.get(schema_name="globex")
        ownership.domain_add(tenant=other, host="pending.example.test")
    try:
        for name in ("pending.example.test", "foreign.example.test"):
            with pytest.raises(ssl.SSLError):
                tls_edge.tls_handshake(name)
            connection = http.client.HTTPConnection("127.0.0.1", app, timeout=10)
            connection.request("GET", "/", headers={"Host": name})
            answer = connection.getresponse()
            assert answer.status == 404, name
            assert "Domains Shop" not in answer.read().decode()
            connection.close()
        obtained = re.findall(
            r'"certificate obtained successfully","identifier":"([^"]+)"',
            tls_edge.caddy_log.read_text(),
        )
        assert SHOP in obtained  # the log is read right
        assert not {"pending.example.test", "foreign.example.test"} & set(obtained)
    finally:
        with orm_access(django_db_blocker):
            Domain.objects.filter(domain="pending.example.test").delete()
