"""The tenant's Settings -> Domains page in its Wagtail admin.

Thin: every action calls tenants.domains.ownership and shows its error as a message.
The page reads only ``request.tenant``, so no parameter can reach another tenant's
domains; only the tenant's administrators (superusers of its schema) may use it.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from tenants.audit.trail import Actor
from tenants.domains import ownership
from tenants.errors import TenantError
from tenants.models import Domain
from tenants.tariffs.features import tenant_feature


class AddDomainForm(forms.Form):
    domain = forms.CharField(
        max_length=300,
        label="Domain",
        help_text="A host name you own, such as shop.example.com or www.example.com.",
    )
    method = forms.ChoiceField(
        choices=Domain.Method.choices,
        initial=Domain.Method.DNS,
        widget=forms.RadioSelect,
        label="Prove ownership with",
    )


def _act(request: HttpRequest, action: str) -> None:
    tenant = request.tenant
    host = request.POST.get("domain", "")
    actor = Actor.from_request(request, source="admin")
    if action == "add":
        form = AddDomainForm(request.POST)
        if not form.is_valid():
            raise TenantError("Enter a domain and how to prove its ownership.")
        domain = ownership.domain_add(
            tenant=tenant,
            host=form.cleaned_data["domain"],
            method=form.cleaned_data["method"],
            actor=actor,
        )
        from tenants.tasks import schedule_domain_verification

        schedule_domain_verification(domain.pk)
        messages.success(
            request,
            f"Added {domain.domain}. {ownership.ownership_instructions(domain)} "
            "It is checked again in the background.",
        )
    elif action == "verify":
        domain = ownership.domain_get(tenant=tenant, host=host)
        ownership.domain_verify(domain=domain)
        messages.success(request, f"{domain.domain} is verified and serves your site.")
    elif action == "primary":
        domain = ownership.domain_make_primary(tenant=tenant, host=host, actor=actor)
        messages.success(request, f"{domain.domain} is now your primary domain.")
    elif action == "remove":
        ownership.domain_remove(tenant=tenant, host=host, actor=actor)
        messages.success(request, f"Removed {host}.")
    elif action in ("hsts-on", "hsts-off"):
        ownership.tenant_set_hsts(
            tenant=tenant, enabled=action == "hsts-on", actor=actor
        )
        messages.success(request, f"HSTS is {'on' if action == 'hsts-on' else 'off'}.")
    else:
        raise TenantError(f"Unknown action {action!r}.")


def tenant_domains_view(request: HttpRequest) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied("Only the site's administrators manage its domains.")
    if request.method == "POST":
        try:
            _act(request, request.POST.get("action", ""))
        except TenantError as exc:
            messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("tenant_domains"))
    tenant = request.tenant
    domains = ownership.tenant_domains(tenant)
    return TemplateResponse(
        request,
        "tenants/admin/domains.html",
        {
            "tenant": tenant,
            "rows": [ownership.domain_as_dict(domain) for domain in domains],
            "form": AddDomainForm(),
            "allowed": tenant_feature(tenant, "custom_domains"),
            "used": ownership.custom_domain_count(tenant),
            "hsts_allowed": bool(tenant_feature(tenant, "hsts")),
            "hsts_enabled": tenant.hsts_enabled,
        },
    )
