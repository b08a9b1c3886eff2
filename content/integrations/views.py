"""Admin views: Settings → API tokens and Settings → Webhooks of a tenant's admin.

Thin: forms in, services of ``tokens`` / ``webhooks`` called, their named errors shown
as messages. Only the tenant's admins (superusers of its schema) manage them. Secrets
are in the response that creates them and nowhere else.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from content.integrations import tokens, webhooks
from content.integrations.models import (
    ApiTokenGrant,
    TokenScope,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from tenants.audit.trail import Actor
from tenants.errors import TenantError


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, source="admin")


def _admins_only(request: HttpRequest) -> None:
    if not request.user.is_superuser:
        raise PermissionDenied


class TokenForm(forms.Form):
    name = forms.CharField(max_length=255)
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[TokenScope.READ],
    )
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional, UTC, e.g. 2027-01-31 12:00. Empty: never expires.",
    )


def api_tokens(request: HttpRequest) -> HttpResponse:
    """List the tenant's tokens; create one (secret shown in this answer only)."""
    _admins_only(request)
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = tokens.token_create(
                tenant=request.tenant,
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.cleaned_data["expires_at"],
                actor=_actor(request),
            )
        except TenantError as exc:
            messages.error(request, str(exc))
        else:
            form = TokenForm()
    grants = ApiTokenGrant.objects.select_related("token", "token__user").order_by(
        "-token__created"
    )
    return TemplateResponse(
        request,
        "content/admin/api_tokens.html",
        {"form": form, "created": created, "grants": grants},
    )


@require_POST
def api_token_revoke(request: HttpRequest, grant_id: int) -> HttpResponse:
    _admins_only(request)
    grant = get_object_or_404(
        ApiTokenGrant.objects.select_related("token"), pk=grant_id
    )
    tokens.token_revoke(grant=grant, actor=_actor(request))
    messages.success(request, f"Token “{grant.token.name}” revoked.")
    return redirect("content_api_tokens")


class EndpointForm(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    description = forms.CharField(max_length=255, required=False)
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[WebhookEvent.PAGE_PUBLISHED],
    )


class EndpointEditForm(EndpointForm):
    enabled = forms.BooleanField(required=False)


def webhooks_index(request: HttpRequest) -> HttpResponse:
    """Endpoints, with why any was disabled; register one (secret shown once)."""
    _admins_only(request)
    form = EndpointForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = webhooks.endpoint_create(
                tenant=request.tenant,
                user=request.user,
                actor=_actor(request),
                **form.cleaned_data,
            )
        except TenantError as exc:
            messages.error(request, str(exc))
        else:
            form = EndpointForm()
    return TemplateResponse(
        request,
        "content/admin/webhooks.html",
        {
            "form": form,
            "created": created,
            "endpoints": WebhookEndpoint.objects.all(),
        },
    )


def webhook_endpoint(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """One endpoint: edit it, send a test, rotate its secret, its delivery log."""
    _admins_only(request)
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    new_secret = None
    form = EndpointEditForm(
        request.POST if request.POST.get("action") == "save" else None,
        initial={
            "url": endpoint.url,
            "description": endpoint.description,
            "events": endpoint.events,
            "enabled": endpoint.enabled,
        },
    )
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "save" and form.is_valid():
                webhooks.endpoint_update(
                    endpoint=endpoint, actor=_actor(request), **form.cleaned_data
                )
                messages.success(request, "Endpoint saved.")
                return redirect("content_webhook_endpoint", endpoint.pk)
            if action == "test":
                webhooks.send_test_event(endpoint=endpoint, actor=request.user)
                messages.success(request, "Test event queued.")
                return redirect("content_webhook_endpoint", endpoint.pk)
            if action == "rotate":
                new_secret = webhooks.endpoint_rotate_secret(
                    endpoint=endpoint, actor=_actor(request)
                )
            if action == "redeliver":
                delivery = get_object_or_404(
                    WebhookDelivery, pk=request.POST.get("delivery"), endpoint=endpoint
                )
                webhooks.redeliver(delivery=delivery)
                messages.success(request, "Delivery queued again.")
                return redirect("content_webhook_endpoint", endpoint.pk)
            if action == "delete":
                webhooks.endpoint_delete(endpoint=endpoint, actor=_actor(request))
                messages.success(request, "Endpoint deleted.")
                return redirect("content_webhooks")
        except TenantError as exc:
            messages.error(request, str(exc))
    deliveries = endpoint.deliveries.all()[:100]
    return TemplateResponse(
        request,
        "content/admin/webhook_endpoint.html",
        {
            "endpoint": endpoint,
            "form": form,
            "new_secret": new_secret,
            "deliveries": deliveries,
        },
    )
