"""API tokens of a tenant: create (secret shown once), revoke, authenticate, count use.

Built on Wagtail 8's ``APIToken`` (HMAC-SHA-256 of a 160-bit secret keyed with
``SECRET_KEY`` and its fallbacks, a display prefix, revocation, acting as a user) with
``ApiTokenGrant`` adding scopes, an expiry and the last client address. DRF's
``authtoken`` does not fit: one token per user, the key stored in clear, no scopes, no
expiry. Tokens live in the tenant's schema, so another tenant's host never finds them;
nothing is cached, so a revocation or an expiry applies to the next request.
"""

import datetime
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from wagtail.models import APIToken

from content.integrations.models import ApiTokenGrant, TokenScope
from tenants.audit.trail import Actor, record_audit
from tenants.errors import TenantError
from tenants.models import Tenant
from tenants.request_path.client_address import client_ip
from tenants.tariffs.features import check_feature_count

SCOPES = tuple(TokenScope.values)


class TokenError(TenantError):
    """A token that cannot be created as asked (bad scopes, plan limit...)."""


class TokenRefused(Exception):
    """A presented token is not valid here; the message says why (for a 401 body)."""


@dataclass(frozen=True)
class CreatedToken:
    grant: ApiTokenGrant
    plaintext: str  # shown once, never stored


def client_address(request: HttpRequest) -> str | None:
    """The client's address as recorded for a token's last use (behind trusted
    proxies, the client's, not the proxy's)."""
    return client_ip(request) or None


def active_tokens():
    return ApiTokenGrant.objects.filter(token__revoked_at__isnull=True)


def token_create(
    *,
    tenant: Tenant,
    user: AbstractBaseUser,
    name: str,
    scopes: list[str],
    expires_at: datetime.datetime | None = None,
    actor: Actor | None = None,
) -> CreatedToken:
    """Create a token acting as ``user`` within ``scopes``; the plaintext is in the
    result only. Raises ``TokenError`` for unknown scopes or a past expiry and
    ``FeatureLimitReached`` when the plan's ``api_tokens`` are used up (revoked
    tokens do not count)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise TokenError(
            f"Give scopes among {', '.join(SCOPES)}"
            + (f"; unknown: {', '.join(unknown)}." if unknown else ".")
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise TokenError("The expiry must be in the future.")
    with transaction.atomic():
        check_feature_count(tenant, "api_tokens", current=active_tokens().count())
        token, plaintext = APIToken.create_token(user=user, name=name)
        grant = ApiTokenGrant.objects.create(
            token=token,
            scopes=[scope for scope in SCOPES if scope in scopes],
            expires_at=expires_at,
            created_by=user,
        )
        record_audit(
            action="api_token.created",
            actor=actor,
            target=f"API token {name!r}",
            after={"scopes": grant.scopes, "user": user.get_username()},
        )
    return CreatedToken(grant=grant, plaintext=plaintext)


def token_revoke(*, grant: ApiTokenGrant, actor: Actor | None = None) -> None:
    """Revoke at once: the next request with this token gets 401."""
    if grant.token.revoked_at is None:
        with transaction.atomic():
            grant.token.revoke()
            record_audit(
                action="api_token.revoked",
                actor=actor,
                target=f"API token {grant.token.name!r}",
            )


def authenticate_token(*, plaintext: str, request: HttpRequest) -> ApiTokenGrant:
    """The grant of a presented token, its use counted (one UPDATE); raises
    ``TokenRefused`` with a reason for an unknown, revoked or expired token, or one
    whose user is inactive."""
    if not APIToken.validate_token_format(plaintext):
        raise TokenRefused("The token is not valid.")
    grant = (
        ApiTokenGrant.objects.select_related("token", "token__user")
        .filter(token__key_hash__in=APIToken.candidate_key_hashes(plaintext))
        .first()
    )
    if grant is None:
        # tokens of other tenants live in their schemas: not found here either
        raise TokenRefused("The token is not valid for this site.")
    now = timezone.now()
    if grant.token.revoked_at is not None:
        raise TokenRefused("The token was revoked.")
    if grant.is_expired(now):
        raise TokenRefused("The token has expired.")
    if not grant.token.user.is_active:
        raise TokenRefused("The token's user is deactivated.")
    ApiTokenGrant.objects.filter(pk=grant.pk).update(
        use_count=F("use_count") + 1,
        last_used_at=now,
        last_used_address=client_address(request),
    )
    return grant
