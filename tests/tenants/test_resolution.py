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


def test_a_generation_lost_from_redis_never_comes_back_to_one_a_worker_holds(settings):
    """Redis restarted empty (or evicted the key) after this worker read generation
    1; another process then adds a domain and bumps. The worker must see a change:
    a counter that restarted at 1 would look unchanged and hide the domain for good."""
    from tenants.models import Domain
    from tenants.redis_store.keys import bump_generation, cache_redis

    settings.CMS_TENANT_CACHE_CHECK_SECONDS = 0
    client = cache_redis()
    client.set(generation_key(), 1)
    acme = resolve_tenant("acme.localhost")
    assert resolve_tenant("new.example.test") is None  # holds generation "1"

    client.delete(generation_key())  # lost
    # another process: a domain verified, then its bump (no signal reaches here)
    Domain.objects.bulk_create(
        [
            Domain(
                domain="new.example.test",
                tenant=acme,
                is_primary=False,
                status="verified",
            )
        ]
    )
    bump_generation(client, generation_key())

    assert resolve_tenant("new.example.test") == acme
