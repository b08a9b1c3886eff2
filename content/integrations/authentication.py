"""The one place API clients are authenticated (content API, write API).

A client is either the browser session of one of the tenant's users (CSRF checked on
writes) or a tenant-scoped ``Authorization: Bearer <token>``. HTTP Basic is refused
with a 401 that says so: a password in every script, and every guess a full password
hash on the shared pool outside the login limits. Scopes: ``read`` for the content
API, ``write`` to create and edit, ``publish`` to publish; a session user has every
scope and the user's Wagtail permissions decide. Errors are JSON
``{"error": ..., "message": ...}`` with 401 (who are you) or 403 (not allowed).
"""

import base64

from django.contrib.auth.signals import user_login_failed
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission

from content.integrations.models import ApiTokenGrant
from content.integrations.tokens import TokenRefused, authenticate_token

WWW_AUTHENTICATE = 'Bearer realm="api"'


class ApiClientAuthentication(BaseAuthentication):
    """Bearer token of this tenant, else the session; never HTTP Basic."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        kind, _, credentials = header.partition(" ")
        kind = kind.lower()
        if kind == "bearer":
            try:
                grant = authenticate_token(
                    plaintext=credentials.strip(), request=request._request
                )
            except TokenRefused as exc:
                _failed(request, "(API token)")
                raise exceptions.AuthenticationFailed(str(exc)) from None
            return grant.token.user, grant
        if kind == "basic":
            _failed(request, _basic_username(credentials))
            raise exceptions.AuthenticationFailed(
                "HTTP Basic authentication is not accepted: use an API token "
                "(Authorization: Bearer <token>) from Settings → API tokens."
            )
        if header:
            raise exceptions.AuthenticationFailed(
                "Unsupported Authorization scheme: use Bearer."
            )
        return SessionAuthentication().authenticate(request)

    def authenticate_header(self, request) -> str:
        return WWW_AUTHENTICATE


def _failed(request, username: str) -> None:
    """A refused credential is a failed login like any other: the audit trail (and
    anything else listening to Django's ``user_login_failed``) sees it."""
    user_login_failed.send(
        sender=__name__, credentials={"username": username}, request=request._request
    )


def _basic_username(credentials: str) -> str:
    """The account an HTTP Basic attempt named (never its password)."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return "(unreadable)"
    return decoded.partition(":")[0][:150]


def token_of(request) -> ApiTokenGrant | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiTokenGrant) else None


def require_scope(request, scope: str) -> None:
    """Raise 403 when the request's token lacks ``scope`` (sessions have all)."""
    grant = token_of(request)
    if grant is not None and not grant.allows(scope):
        raise exceptions.PermissionDenied(
            f"This token lacks the {scope!r} scope (it has: "
            f"{', '.join(grant.scopes) or 'none'})."
        )


class TokenScopes(BasePermission):
    """Reads need ``read``, anything else ``write``; anonymous reads of the public
    content API stay allowed (as before)."""

    def has_permission(self, request, view) -> bool:
        require_scope(request, "read" if request.method in SAFE_METHODS else "write")
        return True


class TokenScopesAuthenticated(TokenScopes):
    """Writes: a user (session or token) with the scope."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            raise exceptions.NotAuthenticated(
                "Authenticate with an API token (Authorization: Bearer <token>) "
                "or an admin session."
            )
        return super().has_permission(request, view)
