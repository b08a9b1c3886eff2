"""What observing a request costs: the request id, access event, metrics and usage
round trip added by tenants.observability.observation, per request, in one process.

Each part is timed on its own over many calls against the configured Redis (logging
to a JSON handler writing to /dev/null, as production logs JSON to a stream), then
all of it around a trivial view. Prints microseconds per request and a RESULT line.

    make bench-observability            # or: python bench/observability/run.py -n 5000
"""

import argparse
import io
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.common import Run, out


def timed(label: str, calls: int, function) -> float:
    for _ in range(min(200, calls)):  # warm connections and caches
        function()
    started = time.perf_counter()
    for _ in range(calls):
        function()
    per_call = (time.perf_counter() - started) / calls * 1e6
    out(f"{label:<48} {per_call:8.1f} us/request")
    return per_call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=5000)
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    run = Run("observability", parser, args)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.test")
    import django

    django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory

    from tenants.metering import counters
    from tenants.observability import metrics
    from tenants.observability.log_context import JsonFormatter, RequestContextFilter
    from tenants.observability.observation import (
        RequestObservationMiddleware,
        TenantContextMiddleware,
    )

    handler = logging.StreamHandler(io.TextIOWrapper(open(os.devnull, "wb")))
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    access = logging.getLogger("cms.access")
    access.handlers = [handler]
    access.propagate = False

    class Tenant:
        schema_name = "bench_tenant"

    factory = RequestFactory()

    def view(request):
        return HttpResponse("ok")

    def gate(request):
        request.tenant = Tenant()
        return TenantContextMiddleware(view)(request)

    observed = RequestObservationMiddleware(gate)
    bare = gate

    metrics.tenant_labels.update(["bench_tenant"])
    out(f"{args.calls} calls per line, Redis {os.environ.get('REDIS_URL', '?')}")
    base = timed(
        "view with tenant context only", args.calls, lambda: bare(factory.get("/"))
    )
    full = timed(
        "observed (id, log, metrics, usage round trip)",
        args.calls,
        lambda: observed(factory.get("/")),
    )
    request = factory.get("/")
    timed(
        "  usage pipeline alone (one round trip)",
        args.calls,
        lambda: counters.record_request(
            schema="bench_tenant", request=request, status=200, seconds=0.01
        ),
    )
    timed(
        "  metrics alone (counter, histogram)",
        args.calls,
        lambda: metrics.record_request(
            tenant="bench_tenant", status=200, seconds=0.01, rejection=None
        ),
    )
    record = logging.LogRecord("cms.access", logging.INFO, "", 0, "GET / 200", (), None)
    timed("  access event alone (JSON)", args.calls, lambda: handler.handle(record))
    return run.finish(
        {"observation_overhead_us": full - base},
        {"view_us": base, "observed_view_us": full, "calls": args.calls},
    )


if __name__ == "__main__":
    sys.exit(main())
