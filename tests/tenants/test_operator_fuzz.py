"""The operator's endpoints fuzzed with generated input: never a 500, never a page
for someone who may not see it."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.generated import examples

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(max_examples=examples(50))
TOKEN = "fuzz-metrics-token"
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    max_size=60,
)
params = st.dictionaries(
    st.sampled_from(["sort", "dir", "page", "q", "x"]) | text,
    text | st.integers().map(str) | st.sampled_from(["asc", "desc", "slug"]),
    max_size=4,
)


@pytest.fixture
def operator() -> Client:
    user = get_user_model().objects.create_user(
        "fuzz-operator", password="fuzz-operator-pw", is_staff=True
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


@FUZZ
@given(query=params)
def test_usage_overview_answers_any_query_without_a_server_error(operator, query):
    response = operator.get("/ops/usage/", query)

    assert response.status_code in (200, 400), (query, response.status_code)


@FUZZ
@given(query=params)
def test_usage_overview_is_never_shown_to_visitors(query):
    response = Client(HTTP_HOST="localhost").get("/ops/usage/", query)

    assert response.status_code == 302
    assert response["Location"].startswith("/ops/login/")


@FUZZ
@given(authorization=text | st.just(f"Bearer {TOKEN}x") | st.just("Bearer "))
def test_metrics_refuse_every_wrong_token(settings, authorization):
    settings.CMS_METRICS_TOKEN = TOKEN

    response = Client(HTTP_HOST="localhost").get(
        "/metrics", HTTP_AUTHORIZATION=authorization
    )

    assert response.status_code in (401, 403, 404), authorization
    assert b"cms_requests_total" not in response.content


@FUZZ
@given(path=st.sampled_from(["/healthz", "/readyz", "/metrics", "/ops/login/"]),
       query=params)  # fmt: skip
def test_operator_host_paths_never_fail(path, query):
    response = Client(HTTP_HOST="localhost").get(path, query)

    assert response.status_code < 500 or (
        path == "/readyz" and response.status_code == 503
    ), (path, query, response.status_code)
