"""Custom domains: what an operator or a tenant may add, how ownership is proven, and
what a domain serves before and after (HTTP with the domain as Host header)."""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_tenants.utils import schema_context

from tenants.domains import ownership
from tenants.domains.proof import challenge_record_name
from tenants.errors import DomainTaken, DomainVerificationFailed, InvalidDomain
from tenants.models import Domain, Tenant
from tenants.tariffs.features import FeatureLimitReached

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("tenants", *args, stdout=out)
    return out.getvalue()


def tenant(slug: str) -> Tenant:
    return Tenant.objects.select_related("plan").get(schema_name=slug)


def domains_now() -> list[tuple]:
    return sorted(Domain.objects.values_list("domain", "tenant__schema_name", "status"))


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("bad host", "Invalid domain"),
        ("shop..example.test", "Invalid domain"),
        ("https://shop.example.test", "Invalid domain"),
        ("bücher.example.test", "Enter its ASCII form 'xn--bcher-kva.example.test'"),
        ("*.example.test", "Wildcard domains"),
        ("shop", "not an IP address or a single word"),
        ("10.0.0.1", "not an IP address"),
        ("localhost", "operator's own public host"),
        ("acme.localhost", "already claimed by another site"),
        ("globex.localhost", "already one of 'globex'"),
    ],
)
def test_bad_domains_are_refused_clearly_and_change_nothing(host, message):
    before = domains_now()
    with pytest.raises(CommandError, match=message):
        run("add-domain", "globex", host)
    assert domains_now() == before


def test_a_tenant_cannot_claim_a_platform_subdomain():
    with pytest.raises(DomainTaken, match="belongs to the platform"):
        ownership.domain_add(tenant=tenant("globex"), host="shop.localhost")
    assert not Domain.objects.filter(domain="shop.localhost").exists()


def test_a_custom_domain_serves_only_once_its_txt_record_is_found(published):
    acme = tenant("acme")
    domain = ownership.domain_add(tenant=acme, host="Shop.Example.Test.")
    assert (domain.domain, domain.status) == ("shop.example.test", "pending")
    assert len(domain.verification_token) == 32

    shop = Client(HTTP_HOST="shop.example.test")
    assert shop.get("/").status_code == 404  # pending: never served

    with pytest.raises(DomainVerificationFailed, match="No TXT record"):
        ownership.domain_verify(domain=domain)
    published.publish_txt(challenge_record_name("shop.example.test"), "not-the-token")
    with pytest.raises(DomainVerificationFailed, match="not this domain's token"):
        ownership.domain_verify(domain=domain)
    domain.refresh_from_db()
    assert domain.status == "pending"
    assert domain.checked_at is not None and "not this domain's token" in (
        domain.last_error
    )
    assert shop.get("/").status_code == 404

    published.publish_txt(
        challenge_record_name("shop.example.test"), domain.verification_token
    )
    ownership.domain_verify(domain=domain)
    domain.refresh_from_db()
    assert (domain.status, domain.last_error) == ("verified", "")
    # served now: redirected to the primary (the platform host) until made primary
    assert shop.get("/p?q=1")["Location"] == "http://acme.localhost:8000/p?q=1"
    run("primary-domain", "acme", "shop.example.test")
    page = shop.get("/")
    assert page.status_code == 200
    assert "Acme" in page.content.decode()


def test_the_operator_adds_and_verifies_from_the_command_line(published):
    with pytest.raises(CommandError, match="not verified yet: No TXT record"):
        run("add-domain", "acme", "cli.example.test", "--verify")
    domain = Domain.objects.get(domain="cli.example.test")
    assert domain.status == "pending"
    listing = run("domains", "acme")
    assert "cli.example.test" in listing and "pending" in listing
    assert (
        f"_cms-challenge.cli.example.test with the value {domain.verification_token}"
        in (listing)
    )

    published.publish_txt("_cms-challenge.cli.example.test", domain.verification_token)
    assert "Verified cli.example.test" in run(
        "verify-domain", "acme", "cli.example.test"
    )
    assert Domain.objects.get(domain="cli.example.test").status == "verified"


def test_the_plans_domain_count_is_enforced_and_a_downgrade_keeps_domains():
    globex = tenant("globex")  # starter: one custom domain
    ownership.domain_add(tenant=globex, host="one.example.test")
    before = domains_now()
    with pytest.raises(FeatureLimitReached, match="allows 1 domains"):
        ownership.domain_add(tenant=globex, host="two.example.test")
    with pytest.raises(CommandError, match="allows 1 domains"):
        run("add-domain", "globex", "two.example.test")
    assert domains_now() == before

    run("set-plan", "globex", "free")  # no custom domains: what exists stays
    assert Domain.objects.filter(domain="one.example.test").exists()
    # platform subdomains the operator hands out do not count
    run("add-domain", "globex", "www.globex.localhost")
    assert Domain.objects.get(domain="www.globex.localhost").status == "verified"


def test_removing_a_domain_frees_it_for_another_tenant():
    ownership.domain_add(tenant=tenant("globex"), host="moving.example.test")
    with pytest.raises(DomainTaken):
        ownership.domain_add(tenant=tenant("acme"), host="moving.example.test")
    run("remove-domain", "globex", "moving.example.test")
    moved = ownership.domain_add(tenant=tenant("acme"), host="moving.example.test")
    assert moved.tenant.schema_name == "acme"


def verified(slug: str, host: str) -> Domain:
    domain = ownership.domain_add(tenant=tenant(slug), host=host)
    Domain.objects.filter(pk=domain.pk).update(status="verified")
    ownership.invalidate_tenant_map()
    return Domain.objects.get(pk=domain.pk)


def test_other_domains_redirect_to_the_primary_keeping_path_and_query():
    verified("acme", "shop.example.test")
    verified("acme", "www.shop.example.test")
    with pytest.raises(Exception, match="not verified yet"):
        ownership.domain_add(tenant=tenant("acme"), host="new.example.test")
        ownership.domain_make_primary(tenant=tenant("acme"), host="new.example.test")
    run("primary-domain", "acme", "shop.example.test")

    # the platform host moves visitors to the custom domain, behind the TLS edge
    answer = Client(HTTP_HOST="acme.localhost").get("/some/page/?q=1&b=2")
    assert answer.status_code == 301
    assert answer["Location"] == "https://shop.example.test/some/page/?q=1&b=2"
    # www -> apex keeps the scheme and port the visitor used
    answer = Client(HTTP_HOST="www.shop.example.test:8443").get(
        "/x", HTTP_X_FORWARDED_PROTO="https"
    )
    assert answer.status_code == 301
    assert answer["Location"] == "http://shop.example.test:8443/x"  # peer untrusted
    posted = Client(HTTP_HOST="www.shop.example.test").post("/api/v2/articles/")
    assert posted.status_code == 308
    assert Client(HTTP_HOST="acme.localhost").get("/healthz").status_code == 200

    home = Client(HTTP_HOST="shop.example.test").get("/")
    assert home.status_code == 200
    with schema_context("acme"):
        from wagtail.models import Site

        site = Site.objects.get(is_default_site=True)
        assert (site.hostname, site.root_url) == (
            "shop.example.test",
            "https://shop.example.test",
        )
    sitemap = Client(HTTP_HOST="shop.example.test").get("/sitemap.xml")
    assert "<loc>https://shop.example.test/" in sitemap.content.decode()
    api = Client(HTTP_HOST="shop.example.test").get(
        "/api/v2/pages/?type=content.HomePage&fields=_,html_url"
    )
    assert api.json()["items"][0]["meta"]["html_url"] == "https://shop.example.test/"

    # a password reset asked for on another domain is asked for on the primary
    from django.core import mail

    reset = Client(HTTP_HOST="acme.localhost").post(
        "/admin/password_reset/", {"email": "admin@acme.localhost"}, follow=True
    )
    assert reset.redirect_chain[0] == (
        "https://shop.example.test/admin/password_reset/",
        308,
    )
    assert mail.outbox and "://shop.example.test/admin/password_reset/confirm/" in (
        mail.outbox[-1].body
    )

    # the apex/www choice: make www primary and the apex redirects to it
    run("primary-domain", "acme", "www.shop.example.test")
    answer = Client(HTTP_HOST="shop.example.test").get("/a?b=c")
    assert answer["Location"] == "http://www.shop.example.test/a?b=c"


def test_hsts_needs_the_plan_and_the_tenants_opt_in(settings):
    settings.CMS_TRUSTED_PROXIES = ["127.0.0.1"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    with pytest.raises(CommandError, match="does not include the tenant may turn on"):
        run("hsts", "globex", "on")  # starter has no hsts
    secure = {"HTTP_X_FORWARDED_PROTO": "https"}
    acme = Client(HTTP_HOST="acme.localhost")
    assert "Strict-Transport-Security" not in acme.get("/", **secure)

    run("hsts", "acme", "on")
    assert acme.get("/", **secure)["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in acme.get("/")  # plain HTTP
    # a client that is not the trusted proxy cannot claim HTTPS
    spoofed = Client(HTTP_HOST="acme.localhost", REMOTE_ADDR="203.0.113.9")
    assert "Strict-Transport-Security" not in spoofed.get("/", **secure)


def test_verification_by_http_token(settings, dns_server):
    import http.server
    import threading

    from tests.integration import free_port

    domain = ownership.domain_add(
        tenant=tenant("acme"), host="web.example.test", method="http"
    )
    token = domain.verification_token

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == f"/.well-known/cms-challenge/{token}" and (
                self.headers["Host"] == "web.example.test"
            )
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(token.encode() if ok else b"nope")

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.CMS_DOMAIN_HTTP_CHECK_PORT = port
    try:
        ownership.domain_verify(domain=domain)
    finally:
        server.shutdown()
        server.server_close()
    assert Domain.objects.get(domain="web.example.test").status == "verified"


def test_unknown_methods_are_refused():
    with pytest.raises(InvalidDomain, match="Unknown verification method"):
        ownership.domain_add(tenant=tenant("acme"), host="m.example.test", method="x")
