"""The API's base view and error shape, shared by the read-side views
(``content.api``) and the write-side views (``content.api_write``): each side
imports them from here, so neither depends on the other's module."""

from rest_framework.response import Response
from rest_framework.views import APIView

from content.integrations.authentication import (
    ApiClientAuthentication,
    TokenScopesAuthenticated,
)


def api_error(code: str, message: str, http_status: int) -> Response:
    """The API's refusal: ``{"error": code, "message": ...}``, readable by a person
    and matchable by a program."""
    return Response({"error": code, "message": message}, status=http_status)


class TokenAPIView(APIView):
    """A view of the API's own endpoints: a tenant's token or an admin session.
    DRF's views are exempt from CSRF (a session is checked by the authentication,
    a token needs none), so every method reaches the view."""

    authentication_classes = [ApiClientAuthentication]
    permission_classes = [TokenScopesAuthenticated]
