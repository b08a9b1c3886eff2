"""Integrations of a tenant's site with its other systems: scoped API tokens and
signed webhooks.

Everything here lives in the tenant's schema (tokens, endpoints, the delivery log), so
a token or an endpoint of one tenant does not exist on another tenant's host.
``authentication`` is the one place API clients are authenticated; ``webhooks`` emits
events and delivers them on the shared pool through the fair queue; ``egress`` is the
only way a webhook leaves the platform (SSRF checks after DNS resolution).
May import ``tenants`` and the rest of ``content``; nothing in ``tenants`` imports it.
"""
