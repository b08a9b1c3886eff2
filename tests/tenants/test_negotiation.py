"""Every answer the platform gives on its own - a 400 for a NUL in the address, a 429
past a rate limit, a 503 with every concurrency slot taken - follows one rule for
who gets JSON (tenants/request_path/negotiation.py): the content API's paths and a
client asking for JSON get JSON; a browser, whose Accept names text/html even when it
also takes JSON, gets a page."""

import json

import pytest
from django.core.management import call_command

from tests.conftest import all_slots_taken

pytestmark = pytest.mark.django_db

JSON_CLIENT = "application/json"
BROWSER = "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"


def _is_json(response) -> bool:
    if not response["Content-Type"].startswith("application/json"):
        return False
    json.loads(response.content)
    return True


def test_a_nul_in_a_public_address_answers_json_to_a_json_client(acme_client):
    as_json = acme_client.get("/search/?q=%00", HTTP_ACCEPT=JSON_CLIENT)
    as_page = acme_client.get("/search/?q=%00", HTTP_ACCEPT=BROWSER)

    assert (as_json.status_code, as_page.status_code) == (400, 400)
    assert "NUL" in json.loads(as_json.content)["message"]
    assert not _is_json(as_page)


def test_past_the_rate_limit_a_browser_that_also_takes_json_gets_the_page(
    acme_client,
):
    call_command("plans", "update", "pro", "--limit", "public_reads_per_minute=1")
    assert acme_client.get("/", HTTP_ACCEPT=BROWSER).status_code == 200

    as_page = acme_client.get("/", HTTP_ACCEPT=BROWSER)
    as_json = acme_client.get("/", HTTP_ACCEPT=JSON_CLIENT)

    assert (as_page.status_code, as_json.status_code) == (429, 429)
    assert "very busy right now" in as_page.content.decode()
    assert json.loads(as_json.content)["error"] == "rate_limited"


def test_with_every_slot_taken_the_503_follows_the_same_rule(acme_client):
    with all_slots_taken("acme"):
        as_page = acme_client.get("/", HTTP_ACCEPT=BROWSER)
        as_json = acme_client.get("/", HTTP_ACCEPT=JSON_CLIENT)

    assert (as_page.status_code, as_json.status_code) == (503, 503)
    assert not _is_json(as_page)
    assert _is_json(as_json)
