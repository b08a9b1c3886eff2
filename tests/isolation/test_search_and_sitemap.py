"""Site search and the sitemap answer from the asked tenant's pages only."""

import pytest

from tests.isolation.conftest import TWIN_SLUG, assert_nothing_of, assert_only_own

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[0, 1], ids=["at-acme", "at-globex"])
def pair(request, twins):
    return twins[request.param], twins[1 - request.param]


def test_search_finds_own_twin_and_never_the_others(pair):
    own, other = pair

    own_query = own.client().get("/search/", {"q": own.secret})
    other_query = own.client().get("/search/", {"q": other.secret})
    shared_title = own.client().get("/search/", {"q": "Twin"})

    assert f'href="/{TWIN_SLUG}/"' in own_query.content.decode()
    # the query is echoed back, so only the absence of results can be checked here
    assert "Nothing found" in other_query.content.decode()
    assert f'href="/{TWIN_SLUG}/"' not in other_query.content.decode()
    assert_only_own(shared_title.content.decode(), own, other, where="search")


def test_sitemap_lists_own_pages_at_own_host(pair):
    own, other = pair

    body = own.client().get("/sitemap.xml").content.decode()

    assert f"<loc>http://{own.host}:8000/{TWIN_SLUG}/</loc>" in body
    assert "twin-draft" not in body
    assert_nothing_of(body, other, where="sitemap")
