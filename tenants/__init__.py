"""The platform: everything decided per tenant, one sub-package per concern.

- ``registry``: which tenants and domains exist, host -> tenant resolution, validation.
- ``provisioning``: creating, cloning, changing, exporting and migrating tenants.
- ``tariffs``: plans (limits, quotas, feature switches) and enforcing them.
- ``request_path``: the one decision a request gets (resolve, gate, admit, limit,
  cache lookup, meter) and the adapters that apply it (WSGI edge, middleware).
- ``metering``: usage counters per tenant and day, their flush and reports.
- ``observability``: request ids, log context, access events, metrics, health probes.
- ``jobs``: the fair queue background work of every tenant shares, and task context.
- ``redis_store``: key names and Lua scripts on the stateful Redis.
- ``adapters``: the only modules that touch private names of dependencies.

``tenants`` never imports ``content``: content registers what it brings (job kinds,
public-page views) with the platform at start-up.
"""
