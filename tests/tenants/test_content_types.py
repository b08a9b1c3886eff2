"""Content types are cached per schema: kept across the gate's schema switches, never
shared between schemas whose ids differ."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

pytestmark = pytest.mark.django_db

PROBE_ID = 987_654


@pytest.fixture
def same_id_other_models():
    """One content type id naming a different model in acme and in public."""
    for schema, model in (("acme", "acmeonly"), ("public", "publiconly")):
        with schema_context(schema):
            ContentType.objects.create(id=PROBE_ID, app_label="probe", model=model)
    ContentType.objects.clear_cache()


def _model_at(schema: str) -> str:
    with schema_context(schema):
        return ContentType.objects.get_for_id(PROBE_ID).model


def test_each_schema_reads_its_own_content_type_for_an_id(same_id_other_models):
    assert _model_at("acme") == "acmeonly"
    assert _model_at("public") == "publiconly"
    assert _model_at("acme") == "acmeonly"
    assert _model_at("public") == "publiconly"


def test_cache_survives_schema_switches(
    same_id_other_models, django_assert_num_queries
):
    _model_at("acme")
    _model_at("public")

    with django_assert_num_queries(0):
        assert _model_at("acme") == "acmeonly"
        assert _model_at("public") == "publiconly"


def test_an_explicit_clear_still_empties_the_cache(
    same_id_other_models, django_assert_num_queries
):
    _model_at("acme")
    ContentType.objects.clear_cache()

    with django_assert_num_queries(2):  # SET search_path, then the content type
        assert _model_at("acme") == "acmeonly"


def test_page_requests_do_not_reread_content_types(acme_client, settings):
    settings.CMS_PAGE_CACHE_SECONDS = 0
    acme_client.get("/acme-launches-the-mark-iv/")

    with CaptureQueriesContext(connection) as captured:
        response = acme_client.get("/acme-launches-the-mark-iv/")

    assert response.status_code == 200
    assert not [
        q for q in captured.captured_queries if "django_content_type" in q["sql"]
    ]
