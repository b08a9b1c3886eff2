"""Token and webhook changes made in a tenant's admin land in the audit trail, with
the admin who made them and the client's address, and only in that tenant's log."""

import pytest
from django.test import Client

from tenants.audit.models import AuditEntry
from tests.conftest import ACME_HOST, GLOBEX_HOST

pytestmark = pytest.mark.django_db


def _admin(host: str, password: str) -> Client:
    client = Client(HTTP_HOST=host, REMOTE_ADDR="203.0.113.44")
    response = client.post("/admin/login/", {"username": "admin", "password": password})
    assert response.status_code == 302
    return client


def test_token_and_webhook_changes_are_audited_for_their_tenant_only():
    admin = _admin(ACME_HOST, "acme-admin-demo")

    admin.post("/admin/content/api-tokens/", {"name": "Deploy bot", "scopes": ["read"]})
    admin.post(
        "/admin/content/webhooks/",
        {"url": "https://hooks.example.com/cms", "events": ["page.published"]},
    )

    entries = {
        entry.action: entry
        for entry in AuditEntry.objects.filter(
            tenant_schema="acme", action__in=["api_token.created", "webhook.created"]
        )
    }
    assert set(entries) == {"api_token.created", "webhook.created"}
    token_entry = entries["api_token.created"]
    assert token_entry.actor == "admin" and token_entry.source == "admin"
    assert token_entry.ip == "203.0.113.44"
    assert "Deploy bot" in token_entry.target
    assert entries["webhook.created"].after["url"] == "https://hooks.example.com/cms"
    # secrets never reach the trail
    assert "whsec_" not in str(entries["webhook.created"].after)

    acme_log = admin.get("/admin/audit-log/").content.decode()
    globex_log = _admin(GLOBEX_HOST, "globex-admin-demo").get("/admin/audit-log/")
    assert "api_token.created" in acme_log
    assert "api_token.created" not in globex_log.content.decode()
