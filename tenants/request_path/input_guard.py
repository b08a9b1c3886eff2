"""Requests whose address carries a NUL character are answered 400 before any view.

PostgreSQL text cannot hold a NUL (psycopg raises DataError), and the address reaches
queries through many doors - the content API's search and filters, its ``find`` by
path, the site search, the admin's listings and searches, page routing by slug - so
one rule at the front of the request path closes them all, where a check per view
would miss the next view added. Form and JSON bodies are left to their fields, which
already refuse a NUL with a message of their own (Django's and DRF's CharField).
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from tenants.request_path.negotiation import wants_json

MESSAGE = (
    "The address contains a NUL character (%00), which no page, search or filter "
    "can hold."
)


def carries_nul(path_info: str, query_string: str) -> bool:
    """Whether the decoded path or the raw query string holds a NUL, encoded or not."""
    return "\x00" in path_info or "%00" in query_string or "\x00" in query_string


def nul_refusal(request: HttpRequest) -> HttpResponse:
    """The 400: JSON with a ``message`` for API clients (the API's own error shape),
    plain text for everyone else."""
    if wants_json(request):
        return JsonResponse({"message": MESSAGE}, status=400)
    return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")


class NulInputMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if carries_nul(request.path_info, request.META.get("QUERY_STRING", "")):
            return nul_refusal(request)
        return self.get_response(request)
