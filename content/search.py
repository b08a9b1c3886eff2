"""Site search: the visitor's query over this tenant's live pages.

Wagtail's database search backend reads the index tables of the current schema, so a
query only ever sees the tenant whose host was asked.
"""

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from wagtail.models import Page

MAX_QUERY_LENGTH = 200
RESULTS_PER_PAGE = 10


def search_view(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    if len(query) > MAX_QUERY_LENGTH:
        response = TemplateResponse(
            request,
            "content/search.html",
            {"query": query[:MAX_QUERY_LENGTH], "error": "That query is too long."},
            status=400,
        )
        return response
    results = None
    if query:
        found = Page.objects.live().public().specific().search(query)
        paginator = Paginator(found, RESULTS_PER_PAGE)
        try:
            results = paginator.page(request.GET.get("page", 1))
        except (PageNotAnInteger, EmptyPage):
            results = paginator.page(1)
    return TemplateResponse(
        request, "content/search.html", {"query": query, "results": results}
    )
