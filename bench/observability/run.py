"""What observing a request costs: the request id, access event, metrics and usage
round trip added by tenants.observability.observation, per request, in one process.

A trivial view with the tenant context only, and the same view observed, are timed
in interleaved rounds (``--rounds``, the order reversed every other round, each
``--calls`` calls per side): the overhead is the median of the rounds' own
differences, with a 95 % bootstrap interval. Then each part is timed on its own
against the configured Redis (logging to a JSON handler writing to /dev/null, as
production logs JSON to a stream). Prints microseconds per request; last line
``RESULT observation_overhead_us=X observation_overhead_us_ci_low=X
observation_overhead_us_ci_high=X``.

Method change (2026-12-06): the two sides ran one after the other, once each (5,000
calls), so a machine busier during one of them (the run of 2026-12-05 22:23 started at a
load average of 10.8 over the last minute, 18 over five) moved the difference; issue 15
asks every comparison for interleaved rounds and an interval.

    make bench-observability            # or: python bench/observability/run.py -n 5000
"""

import argparse
import io
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.common import Run, bootstrap_median, interleaved, interval, out


def per_call_us(calls: int, function) -> float:
    """Microseconds a call, over ``calls`` calls after a warm-up."""
    for _ in range(min(200, calls)):  # warm connections and caches
        function()
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e6


def timed(label: str, calls: int, function) -> float:
    per_call = per_call_us(calls, function)
    out(f"{label:<48} {per_call:8.1f} us/request")
    return per_call


def differences(measured: dict[str, list[float]]) -> list[float]:
    """Each round's observed time less its bare time (us a request)."""
    return [
        observed - bare
        for observed, bare in zip(measured["observed"], measured["bare"], strict=True)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", "--calls", type=int, default=5000, help="calls per side and round"
    )
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    args = parser.parse_args()
    if args.calls < 1 or args.rounds < 2:
        parser.error("need --calls >= 1 and --rounds >= 2 (an interval needs two)")
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
    out(
        f"{args.rounds} interleaved rounds of {args.calls} calls a side, Redis "
        f"{os.environ.get('REDIS_URL', '?')}"
    )
    measured = interleaved(
        {
            "bare": lambda: per_call_us(args.calls, lambda: bare(factory.get("/"))),
            "observed": lambda: per_call_us(
                args.calls, lambda: observed(factory.get("/"))
            ),
        },
        rounds=args.rounds,
    )
    overhead = bootstrap_median(differences(measured))
    base, full = (statistics.median(measured[side]) for side in ("bare", "observed"))
    out(f"{'view with tenant context only (median)':<48} {base:8.1f} us/request")
    out(f"{'observed (id, log, metrics, usage round trip)':<48} {full:8.1f} us/request")
    out(
        f"{'overhead: median of rounds (95 % interval)':<48} {overhead[0]:8.1f} "
        f"us/request ({overhead[1]:.1f}-{overhead[2]:.1f})"
    )
    out(f"{args.calls} calls per line below")
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
        {
            "observation_overhead_us": overhead[0],
            "observation_overhead_us_ci_low": overhead[1],
            "observation_overhead_us_ci_high": overhead[2],
        },
        {
            "view_us": base,
            "observed_view_us": full,
            "calls": args.calls,
            "rounds": args.rounds,
            "overhead_us": interval(overhead),
            "us_by_round": measured,
        },
    )


if __name__ == "__main__":
    sys.exit(main())
