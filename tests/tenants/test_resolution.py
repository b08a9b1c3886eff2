"""What a worker drops when another process changes tenants."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django_redis import get_redis_connection
from django_tenants.utils import schema_context

from tenants.registry.resolution import _tenant_map, generation_key, resolve_tenant

pytestmark = pytest.mark.django_db


def test_a_tenant_change_elsewhere_drops_hosts_and_kept_content_types(settings):
    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 0
    assert resolve_tenant("acme.localhost").schema_name == "acme"
    with schema_context("acme"):
        ContentType.objects.get_for_model(ContentType)  # kept for acme's schema
        assert ContentType.objects._cache

    # what tenant_delete/tenant_create in another process leave in Redis
    get_redis_connection("default").incr(generation_key())
    resolve_tenant("acme.localhost")

    assert not ContentType.objects._cache
    assert list(_tenant_map._hosts) == ["acme.localhost"]  # loaded again
