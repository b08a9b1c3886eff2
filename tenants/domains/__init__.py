"""Custom domains: ownership proof, the primary domain, TLS issuance decisions.

Owns: adding, verifying (DNS TXT or HTTP token), removing and promoting a tenant's
domains (ownership.py, the only writer of Domain rows after provisioning), the
lookups that prove ownership (proof.py), the canonical-host redirect and HSTS
(policy.py) and Caddy's on-demand TLS ``ask`` answer (tls_ask.py).
May import: ``tenants.models``, ``tenants.errors``, ``tenants.registry``,
``tenants.tariffs.features``, ``tenants.tariffs.limits`` (rate counting).
"""
