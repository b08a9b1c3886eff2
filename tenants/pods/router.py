"""The edge router: HAProxy in front of the pods, routing each request by its Host.

Every tenant lives on one pod; HAProxy (Debian's ``haproxy`` 2.6) looks the request's
Host up in a map file (lower-cased, ``:port`` removed) and sends it to that pod's
backend ``pod_<name>``. The map changes at runtime over HAProxy's admin socket
(``set map`` / ``add map`` / ``del map``): no reload, so no open connection is
dropped when a tenant moves. The runtime map lives in HAProxy's memory only, so every
change is written to the map file first; a restarted HAProxy starts from the latest.
Adding or removing a pod changes the config itself: a graceful reload (a new worker
on the same listening sockets, the old one finishing its connections).

Floods are cut here before they cost a pod anything: HAProxy counts the requests it
lets through for each tenant over a sliding 10 s window in a stick table (keyed by
tenant, so all its host names share one budget) and answers a tenant over its edge
limit 429 itself, with ``Retry-After``; a refused request is not counted, so a
flooded site keeps serving its limit's worth to whoever gets through. Nor may a
tenant spend its window at once: in any one second at most twice the window's
average of pages passes (at least 20: a browser loading a page and its images), so
the start of a flood does not land on the pool as one burst. The content API is
paced finer, in any 100 ms at most twice the window's average (at least 2): its
requests cost a worker far more than a cached page (a search, every field of every
page), and a second's allowance let through at once queued every other tenant's
visitors behind it for that second. Pages themselves (everything but the assets
under ``/static/`` and ``/media/``) are paced in tenths of a second too, twice the
pages' average per 100 ms (at least 2): a page may have to be rendered, and the
second's pace let through at the start of a flood (twenty renders within a few
milliseconds, the stick table cold) queued every other tenant's visitors for that
second; a browser's images and scripts keep the second's pace, so a page and its
assets load at once. The site search (``/search/``) is paced on its own key the
same way, so a search flood does not take the tenant's other pages' tenths.
Pages and the content API (``/api/``) are
counted apart, each against its own budget: a flood of page requests does not take
the tenant's API clients' allowance, nor pages the API's (one budget for both let a
page flood through at the API's share too). And one client may not spend the
tenant's pages: each client (by address) has a pages budget of its own, its share of
the plan, checked first, so a client over it is refused before it counts against the
tenant and the tenant's other visitors keep the tenant's budget. The client is the
socket's peer or, from a peer in ``trusted_proxies`` (``CMS_TRUSTED_PROXIES``), the
nearest untrusted hop of ``X-Forwarded-For`` (at most two trusted hops: Caddy and a
load balancer before it), as in tenants.request_path.client_address. The budgets
come from the tenant's plan (``edge limit map``: host ->
``<pages per 10 s>:<API requests per 10 s>:<pages per client per 10 s>:<tenant>``,
kept by tenants.pods.routing), a multiple (``CMS_EDGE_LIMIT_FACTOR``) of what the plan
allows a minute of each kind, so the pod's own exact limits decide below it; the
admin is never counted, so editors keep working while their site is flooded. A host
not in that map is not limited here. The 429 is JSON where the pods' own would be
(tenants.request_path.negotiation: ``/api/``, or an ``Accept`` asking for JSON and
not HTML), a page otherwise.

What a visitor sees when routing fails is decided here, not by a pod: an unknown host
gets a 404 page from HAProxy itself (backend ``pod_unknown``, no pod is asked); a pod
that is down or refuses connections gets a 503 page with ``Retry-After``. Pods are
health-checked on ``/healthz`` (liveness, no database) with a public host name in
``Host``, since the gate answers 404 for ``/healthz`` on a host it does not know.

This module knows host names and pod names, not tenants: the directory
(tenants.pods.directory) says which host goes to which pod, and its command drives
this module. May import: ``tenants.errors``, ``tenants.registry.validation``,
``tenants.pods.directory`` (the pod name rule).
"""

import fcntl
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from cms_project.debian import ToolMissing, ensure_tool
from tenants.errors import TenantError
from tenants.pods.directory import POD_NAME
from tenants.registry.validation import SLUG_PATTERN, normalize_domain

logger = logging.getLogger(__name__)

BACKEND_PREFIX = "pod_"
UNKNOWN_BACKEND = "pod_unknown"
# /healthz answers on the operator's public hosts without touching the database;
# 127.0.0.1 is one of CMS_PUBLIC_HOSTS unless the operator removed it.
HEALTH_CHECK_PATH = "/healthz"
HEALTH_CHECK_HOST = "127.0.0.1"
# a check answered later than this fails; this many failures in a row: down
HEALTH_CHECK_TIMEOUT_SECONDS = 3
HEALTH_CHECK_FALL = 3
RETRY_AFTER_SECONDS = 30
UNKNOWN_HOST_PAGE = "unknown-host.html"
POD_DOWN_PAGE = "pod-unavailable.http"
EDGE_LIMITED_PAGE = "edge-limited.html"
# the JSON body of an edge refusal, one per Retry-After it may carry
EDGE_LIMITED_JSON = "edge-limited-{retry_after}.json"
# the edge limit's window and what a refused client is told to wait
EDGE_WINDOW_SECONDS = 10
EDGE_RETRY_AFTER_SECONDS = 10
# what a client refused for its pace (one period's allowance spent) is told to wait
EDGE_PACE_RETRY_AFTER_SECONDS = 1
# nor faster than this multiple of the window's average in any one pace period (a
# flood would otherwise get the whole window's allowance into the pool at once)
EDGE_PACE_MULTIPLE = 2
# pages: a period of a second, never below this many in it (one browser loading a
# page with its images)
EDGE_PAGES_PACE_MS = 1000
EDGE_PACE_FLOOR = 20
# every page but the assets (and the dear requests among them, the content API and
# the site search, on keys of their own) is paced in tenths of a second too, at least
# this many in each: a flood's first renders must not land on the pool at once, and
# no browser fetches a page's images through them
EDGE_TENTHS_PACE_MS = 100
EDGE_TENTHS_PACE_FLOOR = 2
# assets: paced by the second only (a browser fetches a page's images at once); every
# other page is paced in EDGE_TENTHS_PACE_MS as well (Django's STATIC_URL and
# MEDIA_URL: a test holds them equal)
EDGE_ASSET_PATHS = ("/static/", "/media/")
# the stick table of the tenths' budgets (a backend holding only the table): its
# pace counter has its own period
EDGE_TENTHS_TABLE = "edge_tenths_budget"
# never counted at the edge: editors keep their admin while the site is flooded
# (the path itself and what is under it, not a public page such as /admin-news/)
EDGE_EXEMPT_PATH = "/admin"
# counted apart from pages, against the plan's API allowance
EDGE_API_PATH = "/api/"
# a page paced on a key of its own (content.search): a search flood must not take
# the tenant's other pages' tenths
EDGE_SEARCH_PATH = "/search/"
SOCKET_TIMEOUT_SECONDS = 5.0
START_TIMEOUT_SECONDS = 10.0

UNKNOWN_HOST_HTML = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Site not found</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;">
  <h1>Site not found</h1>
  <p>No site is hosted at this address. Check the address, or ask the site's owner
  whether it has moved.</p>
</body></html>
"""

POD_DOWN_HTML = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Back in a moment</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;">
  <h1>Back in a moment</h1>
  <p>This site is briefly unavailable. Please try again in a minute.</p>
</body></html>
"""


EDGE_LIMITED_HTML = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Too many requests</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;">
  <h1>Too many requests</h1>
  <p>This site is receiving more requests than it can answer right now. Please try
  again in a few seconds.</p>
</body></html>
"""


class RouterUnavailable(TenantError):
    """HAProxy is missing, does not start, or its admin socket does not answer."""


class RouterCommandFailed(TenantError):
    """HAProxy's admin socket refused a command (the message is HAProxy's answer), or
    a host or pod name cannot be written into one."""


# --- installing and starting HAProxy ---------------------------------------------


def ensure_haproxy() -> str:
    """The path of the haproxy binary, installed from Debian when missing and we may.

    The package starts and enables its own ``haproxy.service``, which would hold the
    default ports and a config we do not use: it is disabled, we run our own."""
    try:
        return ensure_tool("haproxy", after_install=_disable_packaged_haproxy)
    except ToolMissing as exc:
        raise RouterUnavailable(
            f"{exc} Then run `systemctl disable --now haproxy`: the router runs its "
            "own."
        ) from exc


def _disable_packaged_haproxy() -> None:
    if shutil.which("systemctl"):
        subprocess.run(
            ["systemctl", "disable", "--now", "haproxy"],
            capture_output=True,
            check=False,
        )


def validate_config(config_path: Path) -> None:
    """``haproxy -c``: raise RouterUnavailable with HAProxy's own message."""
    result = subprocess.run(
        [ensure_haproxy(), "-c", "-f", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stderr + result.stdout).splitlines()
        message = "\n".join(line for line in output if "[NOTICE]" not in line)
        raise RouterUnavailable(f"HAProxy refuses {config_path}:\n{message}")


def start_haproxy(config_path: Path, *, log_path: Path) -> subprocess.Popen:
    """Validate the config, start HAProxy in the foreground as a child process and
    return once its admin socket answers.

    ``-W -db``: master-worker, not daemonized. The returned process is the master,
    which stays for HAProxy's whole life: SIGTERM stops it at once, SIGUSR1 after
    the open requests, SIGUSR2 reloads the config (reload_haproxy) with a new worker
    while the old one finishes its connections. Output goes to ``log_path``."""
    validate_config(config_path)
    socket_path = _config_socket_path(config_path)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [ensure_haproxy(), "-W", "-db", "-f", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_worker(process, socket_path, log_path, not_pid=None)
    except RouterUnavailable:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    return process


def reload_haproxy(
    process: subprocess.Popen, config_path: Path, *, log_path: Path
) -> None:
    """Load a changed config (a pod added or removed) without dropping a connection:
    the master starts a new worker on the same listening sockets, the old worker
    finishes what it serves. The runtime map is the new worker's, read from the map
    file, which every change has already been written to.

    Map changes need no reload; only changes to the pods themselves do."""
    validate_config(config_path)
    socket_path = _config_socket_path(config_path)
    old_worker = _worker_pid(socket_path)
    process.send_signal(signal.SIGUSR2)
    _wait_for_worker(process, socket_path, log_path, not_pid=old_worker)


def _worker_pid(socket_path: Path) -> int:
    for line in send_command(socket_path, "show info").splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    raise RouterUnavailable(f"HAProxy's `show info` on {socket_path} names no Pid.")


def _wait_for_worker(
    process: subprocess.Popen, socket_path: Path, log_path: Path, *, not_pid: int | None
) -> None:
    """Until a worker (other than ``not_pid``) answers on the admin socket."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RouterUnavailable(
                f"HAProxy exited (code {process.returncode}):\n{_tail(log_path)}"
            )
        try:
            if _worker_pid(socket_path) != not_pid:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RouterUnavailable(
        f"HAProxy's admin socket {socket_path} did not answer within "
        f"{START_TIMEOUT_SECONDS:.0f} s:\n{_tail(log_path)}"
    )


def _config_socket_path(config_path: Path) -> Path:
    """The admin socket a config (ours, from render_config) declares."""
    for line in config_path.read_text().splitlines():
        words = line.split()
        if words[:2] == ["stats", "socket"] and len(words) > 2:
            return Path(words[2])
    raise RouterUnavailable(f"{config_path} declares no `stats socket`.")


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError as exc:
        return f"(no log: {exc})"


# --- the configuration -------------------------------------------------------------


def backend_name(pod: str) -> str:
    """``pod_<name>``: checked, since it is written into the config and commands."""
    if not POD_NAME.fullmatch(pod or "") or BACKEND_PREFIX + pod == UNKNOWN_BACKEND:
        raise RouterCommandFailed(f"{pod!r} is not a valid pod name for the router.")
    return BACKEND_PREFIX + pod


def write_pages(pages_dir: Path) -> None:
    """The pages HAProxy answers by itself: the 404 body for an unknown host and the
    429 bodies for a tenant over its edge limit, a page and JSON
    (``http-request return ... file`` wants the body only), and the 503 for a pod
    that is down (``errorfile`` wants a whole raw HTTP response, headers
    included)."""
    _write_atomically(pages_dir / UNKNOWN_HOST_PAGE, UNKNOWN_HOST_HTML.encode())
    _write_atomically(pages_dir / EDGE_LIMITED_PAGE, EDGE_LIMITED_HTML.encode())
    for retry_after in (EDGE_RETRY_AFTER_SECONDS, EDGE_PACE_RETRY_AFTER_SECONDS):
        _write_atomically(
            pages_dir / EDGE_LIMITED_JSON.format(retry_after=retry_after),
            edge_limited_json(retry_after).encode(),
        )
    body = POD_DOWN_HTML.encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    _write_atomically(pages_dir / POD_DOWN_PAGE, head.encode() + body)


def render_config(
    *,
    bind: str,
    pods: dict[str, str],
    map_path: Path,
    socket_path: Path,
    pages_dir: Path,
    limits_path: Path | None = None,
    trusted_proxies: Sequence[str] = (),
    health_host: str = HEALTH_CHECK_HOST,
) -> str:
    """haproxy.cfg routing ``bind`` to ``pods`` (name -> "host:port" of its pool).

    The timings decide what a visitor of a failed pod waits: a refused connection is
    retried once after ``timeout connect`` (1 s), then answered 503; the health check
    (every second, then every 250 ms once one has failed, down after
    ``HEALTH_CHECK_FALL``) marks a dead pod - connections refused - down within
    ~1.5 s, after which its requests get the 503 at once without trying it. A check
    may take ``HEALTH_CHECK_TIMEOUT_SECONDS``: a pod busy enough to answer its
    ``/healthz`` late (a full listen queue, a worker restarting on a saturated CPU)
    is slow, not dead, and taking it down would turn its load into a 503 for every
    tenant on it; a pod that hangs is taken down after ~10 s. ``health_host`` must
    be one of ``CMS_PUBLIC_HOSTS``: on any other host the gate answers ``/healthz``
    with 404.
    With ``limits_path`` (the edge limit map) tenants over their limit get 429, and
    clients over their share of a tenant's pages; ``trusted_proxies`` (CIDRs) are the
    peers whose ``X-Forwarded-For`` names the client."""
    health_host = normalize_domain(health_host)
    map_file, socket_file, pages = (
        _config_path(path) for path in (map_path, socket_path, pages_dir)
    )
    lines = [
        "global",
        # no `daemon`: the caller runs HAProxy as its child (start_haproxy)
        "    maxconn 4096",
        f"    stats socket {socket_file} mode 600 level admin",
        "    stats timeout 30s",
        # an old worker still serving after a reload is stopped after this
        "    hard-stop-after 2m",
        # alerts and pods going down or up to stderr; access lines (level info) are
        # dropped: each pod's app logs every request with its tenant
        "    log stderr format raw local0 notice",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option http-keep-alive",
        # after a reload the old worker answers one more request on each idle
        # connection (with Connection: close) instead of closing it under the client
        "    option idle-close-on-response",
        # the app believes X-Forwarded-For only from CMS_TRUSTED_PROXIES
        "    option forwardfor",
        "    retries 1",
        "    timeout connect 1s",
        f"    timeout check {HEALTH_CHECK_TIMEOUT_SECONDS}s",
        "    timeout client 30s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout queue 5s",
        "    timeout server 60s",
        f"    errorfile 503 {pages}/{POD_DOWN_PAGE}",
        "",
        "frontend web",
        f"    bind {bind}",
        *(
            _edge_limit_lines(_config_path(limits_path), pages, trusted_proxies)
            if limits_path
            else []
        ),
        # the map holds lower-case host names without port; a Host that is missing
        # or not in it goes to pod_unknown
        "    use_backend %[req.hdr(host),lower,field(1,:),"
        f"map({map_file},{UNKNOWN_BACKEND})]",
        f"    default_backend {UNKNOWN_BACKEND}",
        "",
        f"backend {UNKNOWN_BACKEND}",
        '    http-request return status 404 content-type "text/html; charset=utf-8"'
        f" hdr Cache-Control no-store file {pages}/{UNKNOWN_HOST_PAGE}",
    ]
    if limits_path:
        lines += ["", f"backend {EDGE_TENTHS_TABLE}", _stick_table(EDGE_TENTHS_PACE_MS)]
    for pod, address in sorted(pods.items()):
        lines += [
            "",
            f"backend {backend_name(pod)}",
            "    option httpchk",
            f"    http-check send meth GET uri {HEALTH_CHECK_PATH} ver HTTP/1.1"
            f" hdr Host {health_host}",
            "    http-check expect status 200",
            f"    server {pod} {_pool_address(address)}"
            f" check inter 1s fastinter 250ms fall {HEALTH_CHECK_FALL} rise 1",
        ]
    return "\n".join(lines) + "\n"


def edge_limited_json(retry_after: int) -> str:
    """The edge's 429 for an API client, in the shape of the pods' own
    (tenants.tariffs.limits.limited_response), so a client handles both alike."""
    return json.dumps(
        {
            "error": "rate_limited",
            "message": (
                "This site is receiving more requests than it can answer right now."
                f" Try again in {retry_after} s."
            ),
            "limit": "edge",
            "retry_after": retry_after,
        }
    )


def _edge_limit_lines(
    limits_file: str, pages: str, trusted_proxies: Sequence[str]
) -> list[str]:
    """The frontend's edge limit: the host's ``<pages>:<api>:<client>:<tenant>`` from
    the map (``0:0:0:`` when absent: not limited), the request's kind (``/api/`` or
    not) picking its budget and its key in the stick table (``tenant`` or
    ``tenant/api``), a page's client with a key of its own (``tenant/<address>``,
    tracked as sc1) checked first, a page's pace in tenths next (``tenant/pages``,
    or ``tenant/search`` for a search; sc2; not for assets), and a 429 once a key is
    over its window or its pace. Only requests let
    through are counted (``gpc0`` over the window, ``gpc1`` over the pace period: a
    second for pages, ``EDGE_TENTHS_PACE_MS`` in the tenths' own table): a
    refused request costs the tenant nothing, so a flooded site keeps serving its
    limit's worth, and a client refused for its own budget does not spend the
    tenant's. The tenths' keys have a pace and no window: the tenant's key counts
    every page against the pages' window already."""
    counted = "edge_limited !edge_admin"
    # a page, not an asset: paced in tenths of a second too
    tenths = "!edge_api !edge_asset"

    def refuse(retry_after: int, over: str) -> list[str]:
        head = f"    http-request return status 429 hdr Retry-After {retry_after}"
        head += " hdr Cache-Control no-store"
        json_body = EDGE_LIMITED_JSON.format(retry_after=retry_after)
        return [
            f"{head} content-type application/json file {pages}/{json_body}"
            f" if {counted} edge_api {over}"
            f" || {counted} edge_takes_json !edge_takes_html {over}",
            f'{head} content-type "text/html; charset=utf-8"'
            f" file {pages}/{EDGE_LIMITED_PAGE} if {counted} {over}",
        ]

    def over_pace(counter: int, limit: str) -> list[str]:
        """The refusals of one tracked key over its pace: ``<limit>_pace`` in a
        period, never below ``<limit>_floor`` (both set by ``paced``)."""
        return refuse(
            EDGE_PACE_RETRY_AFTER_SECONDS,
            f"{{ sc_gpc1_rate({counter}),sub({limit}_pace) ge 0 }}"
            f" {{ sc_gpc1_rate({counter}),sub({limit}_floor) ge 0 }}",
        )

    def over_budget(counter: int, limit: str) -> list[str]:
        """The refusals of one tracked key: over its window, then over its pace."""
        return refuse(
            EDGE_RETRY_AFTER_SECONDS,
            f"{{ sc_gpc0_rate({counter}),sub({limit}) ge 0 }}",
        ) + over_pace(counter, limit)

    def paced(
        var: str, periods_per_window: int, floor: int, when: str, of: str = ""
    ) -> list[str]:
        """``<var>_pace``: the multiple of the window's average (``of``, else
        ``var``) that one pace period lets through, and ``<var>_floor``, where the
        request is ``when``."""
        return [
            f"    http-request set-var({var}_pace) var({of or var}),"
            f"mul({EDGE_PACE_MULTIPLE}),div({periods_per_window}) if {when}",
            f"    http-request set-var({var}_floor) int({floor}) if {when}",
        ]

    tenths_periods = EDGE_WINDOW_SECONDS * 1000 // EDGE_TENTHS_PACE_MS

    return [
        _stick_table(EDGE_PAGES_PACE_MS),
        "    acl edge_limited var(txn.edge_limit) -m int gt 0",
        f"    acl edge_admin path {EDGE_EXEMPT_PATH}",
        f"    acl edge_admin path_beg {EDGE_EXEMPT_PATH}/",
        f"    acl edge_api path_beg {EDGE_API_PATH}",
        f"    acl edge_search path_beg {EDGE_SEARCH_PATH}",
        f"    acl edge_asset path_beg {' '.join(EDGE_ASSET_PATHS)}",
        # tenants.request_path.negotiation's rule for everything but the path
        "    acl edge_takes_json req.hdr(accept) -m sub application/json",
        "    acl edge_takes_html req.hdr(accept) -m sub text/html",
        *_client_address_lines(trusted_proxies),
        "    http-request set-var(txn.edge) req.hdr(host),lower,field(1,:),"
        f"map({limits_file},0:0:0:)",
        "    http-request set-var(txn.edge_tenant) var(txn.edge),field(4,:)",
        "    http-request set-var(txn.edge_limit) var(txn.edge),field(1,:)"
        " if !edge_api",
        "    http-request set-var(txn.edge_limit) var(txn.edge),field(2,:) if edge_api",
        "    http-request set-var(txn.edge_client_limit) var(txn.edge),field(3,:)"
        " if !edge_api",
        "    http-request set-var(txn.edge_key) var(txn.edge_tenant) if !edge_api",
        "    http-request set-var(txn.edge_key) var(txn.edge_tenant),concat(/api)"
        " if edge_api",
        "    http-request set-var(txn.edge_client_key)"
        " var(txn.edge_tenant),concat(/,txn.edge_client,)",
        # a page's key in the tenths' table (a search's own), paced in
        # tenths on the pages' budget
        "    http-request set-var(txn.edge_tenths_key) var(txn.edge_tenant),"
        f"concat(/pages) if {tenths} !edge_search",
        "    http-request set-var(txn.edge_tenths_key) var(txn.edge_tenant),"
        "concat(/search) if edge_search",
        *paced("txn.edge_limit", EDGE_WINDOW_SECONDS, EDGE_PACE_FLOOR, "!edge_api"),
        *paced("txn.edge_limit", tenths_periods, EDGE_TENTHS_PACE_FLOOR, "edge_api"),
        *paced(
            "txn.edge_client_limit", EDGE_WINDOW_SECONDS, EDGE_PACE_FLOOR, "!edge_api"
        ),
        *paced(
            "txn.edge_tenths_limit",
            tenths_periods,
            EDGE_TENTHS_PACE_FLOOR,
            tenths,
            of="txn.edge_limit",
        ),
        f"    http-request track-sc0 var(txn.edge_key) if {counted} !edge_api",
        f"    http-request track-sc0 var(txn.edge_key) table {EDGE_TENTHS_TABLE}"
        f" if {counted} edge_api",
        f"    http-request track-sc1 var(txn.edge_client_key) if {counted} !edge_api",
        f"    http-request track-sc2 var(txn.edge_tenths_key) table {EDGE_TENTHS_TABLE}"
        f" if {counted} {tenths}",
        # the client's own budget first: refused there, it spends nothing of the
        # tenant's; then the tenant's budget (a search over the pages' window is
        # told the window's wait), then a page's pace in tenths
        *over_budget(1, "txn.edge_client_limit"),
        *over_budget(0, "txn.edge_limit"),
        *over_pace(2, "txn.edge_tenths_limit"),
        f"    http-request sc-inc-gpc0(0) if {counted}",
        f"    http-request sc-inc-gpc1(0) if {counted}",
        f"    http-request sc-inc-gpc0(1) if {counted} !edge_api",
        f"    http-request sc-inc-gpc1(1) if {counted} !edge_api",
        f"    http-request sc-inc-gpc1(2) if {counted} {tenths}",
    ]


def _stick_table(pace_ms: int) -> str:
    """A table of edge budgets: requests let through over the window (``gpc0``) and
    over the pace period (``gpc1``)."""
    return (
        "    stick-table type string len 128 size 200k expire 1m"
        f" store gpc0_rate({EDGE_WINDOW_SECONDS}s),gpc1_rate({pace_ms}ms)"
    )


def _client_address_lines(trusted_proxies: Sequence[str]) -> list[str]:
    """``txn.edge_client``: the peer's address or, from a trusted proxy, the nearest
    untrusted hop of ``X-Forwarded-For`` (two trusted hops at most); a hop that is
    not an address is not believed."""
    lines = ["    http-request set-var(txn.edge_client) src"]
    cidrs = " ".join(_cidrs(trusted_proxies))
    if not cidrs:
        return lines
    last = "req.hdr_ip(x-forwarded-for,-1)"
    before = "req.hdr_ip(x-forwarded-for,-2)"
    return [
        *lines,
        f"    acl edge_from_proxy src {cidrs}",
        f"    acl edge_last_hop_proxy {last} {cidrs}",
        f"    http-request set-var(txn.edge_client) {last}"
        f" if edge_from_proxy {{ {last} -m found }}",
        f"    http-request set-var(txn.edge_client) {before}"
        f" if edge_from_proxy edge_last_hop_proxy {{ {before} -m found }}",
    ]


def _cidrs(trusted_proxies: Sequence[str]) -> list[str]:
    """The trusted proxies as HAProxy patterns, each checked: they are written into
    the config."""
    try:
        return [
            str(ipaddress.ip_network(cidr.strip(), strict=False))
            for cidr in trusted_proxies
            if cidr.strip()
        ]
    except ValueError as exc:
        raise RouterUnavailable(
            f"CMS_TRUSTED_PROXIES: {exc} (a list of addresses or CIDRs)."
        ) from None


def _config_path(path: Path) -> str:
    """An absolute path HAProxy can read unquoted (a map's path is also its name on
    the admin socket, so RouterSocket must be given the same one)."""
    text = str(path)
    if not path.is_absolute() or any(c.isspace() or c in ",()#'\"\\" for c in text):
        raise RouterUnavailable(
            f"{text!r}: HAProxy's files need an absolute path without spaces, "
            "commas, parentheses, quotes or #."
        )
    return text


def _pool_address(address: str) -> str:
    """host:port of a pod's pool, checked: it is written into the config."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or any(c.isspace() for c in address):
        raise RouterUnavailable(
            f"{address!r} is not host:port of a pod's pool (e.g. 127.0.0.1:8001)."
        )
    return address


# --- the map -----------------------------------------------------------------------


def write_map(map_path: Path, hosts: dict[str, str]) -> None:
    """The host map file (``host pod_<name>`` lines)."""
    write_map_entries(map_path, _host_entries(hosts))


def write_map_entries(map_path: Path, entries: dict[str, str]) -> None:
    """A map file (``key value`` lines), replaced atomically, so HAProxy starting at
    any moment reads a whole map, old or new."""
    lines = [f"{key} {value}\n" for key, value in sorted(entries.items())]
    _write_atomically(map_path, "".join(lines).encode())


def _host_entries(hosts: dict[str, str]) -> dict[str, str]:
    return {normalize_domain(host): backend_name(pod) for host, pod in hosts.items()}


class EdgeLimit(NamedTuple):
    """One tenant's edge budgets, requests per ``EDGE_WINDOW_SECONDS``: its pages and
    its content API, counted apart, and the pages any one client may take of it."""

    pages: int
    api: int
    client: int
    tenant: str


def edge_limit_entries(limits: dict[str, EdgeLimit]) -> dict[str, str]:
    """host -> its ``EdgeLimit`` as the edge limit map's entries. A row that cannot
    be one (a budget below 1, not a tenant name) is left out with a warning: that
    host goes unlimited at the edge (its pod still applies the plan), and every
    other host keeps its limit and its route."""
    entries = {}
    for host, limit in limits.items():
        pages, api, client, tenant = limit
        valid = all(isinstance(n, int) and n >= 1 for n in (pages, api, client))
        if not valid or not SLUG_PATTERN.fullmatch(tenant):
            logger.warning("edge limit of %r left out: %r", host, limit)
            continue
        entries[normalize_domain(host)] = f"{pages}:{api}:{client}:{tenant}"
    return entries


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- the admin socket --------------------------------------------------------------


def send_command(socket_path: Path, command: str, payload: str | None = None) -> str:
    """One command on HAProxy's admin socket, one connection: HAProxy answers and
    closes. ``payload`` (lines, e.g. map entries) follows ``<<`` and ends at an empty
    line. Raises OSError when nothing listens."""
    if any(c in command for c in "\r\n") or (payload and "\n\n" in payload):
        raise RouterCommandFailed(f"One line per command, not {command!r}.")
    message = command if payload is None else f"{command} <<\n{payload.rstrip()}\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(SOCKET_TIMEOUT_SECONDS)
        connection.connect(str(socket_path))
        connection.sendall(message.encode() + b"\n")
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class RouterSocket:
    """The running router's host map and pod states, through its admin socket.

    ``map_path`` names the map both on disk and inside HAProxy (the runtime map is
    keyed by the path the config loaded it from). Every change is written to the
    file first, then applied at runtime, so a restart never loses one, and every
    change is idempotent, so the directory's listener may replay it. Changes from
    several processes are serialized by a lock file next to the map."""

    def __init__(self, socket_path: Path, map_path: Path) -> None:
        self.socket_path = socket_path
        self.map_path = map_path

    def command(self, command: str, payload: str | None = None) -> str:
        try:
            return send_command(self.socket_path, command, payload)
        except OSError as exc:
            raise RouterUnavailable(
                f"HAProxy's admin socket {self.socket_path} does not answer: {exc}"
            ) from exc

    def hosts(self) -> dict[str, str]:
        """host -> pod, as the running HAProxy routes now."""
        return {
            host: backend.removeprefix(BACKEND_PREFIX)
            for host, backend in self.entries(self.map_path).items()
        }

    def entries(self, map_path: Path) -> dict[str, str]:
        """A runtime map's entries, key -> value."""
        answer = self.command(f"show map {map_path}")
        entries: dict[str, str] = {}
        for line in answer.splitlines():
            words = line.split()
            # "0x55d0c3a1b2c0 shop.example.com pod_eu1"
            if len(words) == 3 and words[0].startswith("0x"):
                # of duplicate keys the first added is the one HAProxy uses
                entries.setdefault(words[1], words[2])
            elif line.strip():
                raise RouterCommandFailed(f"HAProxy refused `show map`: {answer}")
        return entries

    def set_host(self, host: str, pod: str) -> None:
        """Route ``host`` to ``pod`` from the next request on, on open connections
        too. ``set map`` replaces the entry in place; ``add map`` only when it is
        new, since adding an existing key makes a duplicate that shadows it."""
        host, backend = normalize_domain(host), backend_name(pod)
        with self._lock():
            write_map(self.map_path, {**self.hosts(), host: pod})
            if not self._change(f"set map {self.map_path} {host} {backend}"):
                self._change(f"add map {self.map_path} {host} {backend}")

    def remove_host(self, host: str) -> None:
        """Stop routing ``host`` (it gets the unknown-host page); absent is fine."""
        host = normalize_domain(host)
        with self._lock():
            hosts = self.hosts()
            hosts.pop(host, None)
            write_map(self.map_path, hosts)
            self._change(f"del map {self.map_path} {host}")

    def replace_hosts(self, hosts: dict[str, str]) -> None:
        """Make the whole host map ``hosts`` in one step."""
        self.replace_entries(self.map_path, _host_entries(hosts))

    def replace_entries(self, map_path: Path, entries: dict[str, str]) -> None:
        """Make the whole map ``entries`` in one step (after the directory's listener
        missed notifications, say): a new version is filled aside and committed at
        once, so no request sees a half-built map. The file first, as always."""
        lines = "".join(f"{key} {value}\n" for key, value in sorted(entries.items()))
        with self._lock():
            write_map_entries(map_path, entries)
            answer = self.command(f"prepare map {map_path}")
            version = answer.strip().rpartition(":")[2].strip()
            if not answer.startswith("New version created:") or not version.isdigit():
                raise RouterCommandFailed(f"HAProxy refused `prepare map`: {answer}")
            if lines:
                self._change(f"add map @{version} {map_path}", payload=lines)
            self._change(f"commit map @{version} {map_path}")

    def pod_states(self) -> dict[str, str]:
        """pod -> "UP" or "DOWN" (or HAProxy's word, e.g. "MAINT"), per pod backend.

        From ``show stat``'s CSV: the backend row's status, which for a backend of
        one server is that server's state after its health checks."""
        answer = self.command("show stat")
        lines = answer.splitlines()
        if not lines or not lines[0].startswith("# "):
            raise RouterCommandFailed(f"HAProxy refused `show stat`: {answer}")
        columns = lines[0][2:].split(",")
        proxy, service, status = (
            columns.index(name) for name in ("pxname", "svname", "status")
        )
        states = {}
        for line in lines[1:]:
            fields = line.split(",")
            if len(fields) <= status or fields[service] != "BACKEND":
                continue
            name = fields[proxy]
            if name.startswith(BACKEND_PREFIX) and name != UNKNOWN_BACKEND:
                states[name.removeprefix(BACKEND_PREFIX)] = fields[status]
        return states

    def _change(self, command: str, payload: str | None = None) -> bool:
        """A map change; False when the entry it names does not exist."""
        answer = self.command(command, payload).strip()
        if not answer:
            return True
        if answer.lower() in {"entry not found.", "key not found."}:
            return False
        raise RouterCommandFailed(f"HAProxy refused `{command}`: {answer}")

    @contextmanager
    def _lock(self) -> Iterator[None]:
        lock_path = self.map_path.with_name(f".{self.map_path.name}.lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
