"""API errors in one shape, ``{"error": code, "message": text}`` (DRF's
``EXCEPTION_HANDLER``). Its own module: DRF imports its settings' classes while
``rest_framework.views`` is still loading."""

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

ERROR_CODES = {401: "not_authenticated", 403: "forbidden", 404: "not_found"}


def api_exception_handler(exc, context) -> Response | None:
    """DRF's handler with a body that says what went wrong in one shape:
    ``{"error": code, "message": text}`` (validation errors keep their fields)."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": "invalid", "fields": response.data}
        return response
    detail = response.data.get("detail") if isinstance(response.data, dict) else None
    if detail is not None:
        code = ERROR_CODES.get(response.status_code) or getattr(detail, "code", "error")
        response.data = {"error": code, "message": str(detail)}
    return response
