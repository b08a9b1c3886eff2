"""The content API fuzzed with generated input: any query, path or body gets an
answer below 500, and a 4xx answer of the write API says why in JSON."""

import json

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import ACME_HOST
from tests.generated import examples

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(max_examples=examples(60))


@pytest.fixture
def admin(api_token) -> str:
    return f"Bearer {api_token('acme')}"


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
)
query_keys = st.sampled_from(
    [
        "type", "fields", "order", "limit", "offset", "search", "search_operator",
        "child_of", "descendant_of", "ancestor_of", "slug", "html_path", "id",
        "locale", "translation_of", "show_in_menus", "title", "format",
    ]
) | text  # fmt: skip
numbers = st.integers(min_value=-(2**63), max_value=2**63).map(str)
query_values = text | numbers | st.sampled_from(["*", "-id", "content.ArticlePage"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=12,
)
article_bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "title": json_values,
            "text": json_values,
            "intro": json_values,
            "publish": json_values,
            "publication_date": json_values | st.dates().map(str),
            "slug": json_values,
        },
    )
    | json_values
)


@FUZZ
@given(
    endpoint=st.sampled_from(["pages", "images", "documents"]),
    params=st.dictionaries(query_keys, query_values, max_size=4),
)
@example(endpoint="pages", params={"search": "\x00"})  # found by CI, 2026-12-03
@example(endpoint="images", params={"offset": str(2**63)})  # found by CI, 2026-12-05
def test_reads_never_fail_with_a_server_error(endpoint, params):
    response = Client(HTTP_HOST=ACME_HOST).get(f"/api/v2/{endpoint}/", params)

    assert response.status_code < 500, (params, response.content[:300])


@FUZZ
@given(
    endpoint=st.sampled_from(["pages", "images", "documents"]),
    item=numbers | text.filter(lambda value: "/" not in value and value),
)
def test_detail_lookups_never_fail_with_a_server_error(endpoint, item):
    response = Client(HTTP_HOST=ACME_HOST).get(f"/api/v2/{endpoint}/{item}/")

    assert response.status_code < 500, (item, response.content[:300])


@FUZZ
@given(body=article_bodies, page=st.none() | st.integers(min_value=0, max_value=2**40))
def test_writes_answer_a_readable_4xx_or_succeed(admin, body, page):
    path = "/api/v2/articles/" + (f"{page}/" if page is not None else "")
    client = Client(HTTP_HOST=ACME_HOST)
    with transaction.atomic():
        response = client.generic(
            "POST" if page is None else "PATCH",
            path,
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=admin,
        )
        transaction.set_rollback(True)

    assert response.status_code < 500, (body, response.content[:300])
    if 400 <= response.status_code < 500:
        assert json.loads(response.content), response.content


@FUZZ
@given(raw=st.binary(max_size=200), content_type=st.sampled_from(
    ["application/json", "text/plain", "multipart/form-data; boundary=x", ""]
))  # fmt: skip
def test_undecodable_bodies_are_refused_cleanly(admin, raw, content_type):
    with transaction.atomic():
        response = Client(HTTP_HOST=ACME_HOST).generic(
            "POST",
            "/api/v2/articles/",
            raw,
            content_type=content_type,
            HTTP_AUTHORIZATION=admin,
        )
        transaction.set_rollback(True)

    assert 400 <= response.status_code < 500, (raw, response.content[:300])


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    path=st.just("/api/v2/articles/")
    | numbers.map(lambda n: f"/api/v2/articles/{n.lstrip('-')}/")
    | numbers.map(lambda n: f"/api/v2/jobs/{n.lstrip('-')}/"),
    body=article_bodies,
)
def test_any_method_on_the_write_api_answers_below_500(admin, method, path, body):
    # a POST to an article was a 500 (one view for both paths; found 2026-12-05)
    with transaction.atomic():
        response = Client(HTTP_HOST=ACME_HOST).generic(
            method,
            path,
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=admin,
        )
        transaction.set_rollback(True)

    assert response.status_code < 500, (method, path, response.content[:300])
    if 400 <= response.status_code < 500 and response.content:
        assert json.loads(response.content), response.content


segment = text.filter(lambda value: value and "/" not in value and "?" not in value)


@FUZZ
@given(
    segments=st.lists(
        segment | st.sampled_from(["pages", "images", "documents", "jobs", "find"]),
        min_size=1,
        max_size=3,
    ),
    trailing=st.booleans(),
)
@example(segments=["pages", "\x00"], trailing=True)
@example(segments=["pages", "find"], trailing=True)
@example(segments=["%zz", ".."], trailing=False)
@example(segments=["jobs", str(2**63)], trailing=True)
def test_any_read_under_the_api_answers_json_below_500(admin, segments, trailing):
    # an unknown path was the site's HTML 404 (found 2026-12-05 by the write API's fuzz)
    path = "/api/v2/" + "/".join(segments) + ("/" if trailing else "")
    response = Client(HTTP_HOST=ACME_HOST).get(path, HTTP_AUTHORIZATION=admin)

    assert response.status_code < 500, (path, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), (
        path,
        response.status_code,
        response.content[:300],
    )
