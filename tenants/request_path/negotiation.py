"""Who gets JSON: one rule for every answer the platform gives on its own (a 429 of a
rate limit, a 503 of a full pool or of an outage, a 400 of a bad address), so that an
API client gets the same shape from each and a browser a page from each."""

from django.http import HttpRequest


def wants_json(request: HttpRequest) -> bool:
    """The content API's paths, or a client that asks for JSON and not for HTML (a
    browser's ``Accept`` names ``text/html`` even where it also takes JSON)."""
    accept = request.headers.get("Accept", "")
    return request.path_info.startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept
    )
