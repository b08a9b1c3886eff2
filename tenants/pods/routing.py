"""The router kept in step with the directory (``manage.py pods router``).

One process beside HAProxy: it writes HAProxy's config and map from the directory,
starts HAProxy, then LISTENs on the directory's ``cms_directory`` channel. Every
tenant created, domain added or tenant moved on any pod changes a directory row,
whose trigger notifies here; the host map is then compared with HAProxy's runtime map
and the difference applied over the admin socket (no reload: open connections stay).
A full comparison also runs every ``RESYNC_SECONDS`` in case a notification was lost
with the connection. Pods added or changed need a new backend: HAProxy is reloaded
gracefully with the new config (its old worker finishes what it serves).

Every pod's tenants' plans go into the edge limit map (tenants.pods.edge_limits), by
which HAProxy refuses a flood before a pod. They are read by a thread of their own,
asked after every sync: reading them means one connection to each pod's database,
and a pod whose database does not answer (up to its connect timeout) must not hold
up a route change or a move waiting for this router's acknowledgement.

After every sync the router records in the directory the time its map is as of
(``directory.router_synced``); a tenant's move waits for that before the source pod
lets the tenant go, so no request is routed to a pod that no longer knows its host.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

from django.conf import settings

from tenants.pods import directory, edge_limits, router

logger = logging.getLogger(__name__)
RESYNC_SECONDS = 5.0


def _backends(pods: list[directory.Pod]) -> dict[str, str]:
    return {pod.name: pod.web for pod in pods}


class RouterRunner:
    def __init__(self, *, bind: str, state_dir: Path) -> None:
        self.bind = bind
        self.state_dir = Path(state_dir)
        self.map_path = self.state_dir / "hosts.map"
        self.limits_path = self.state_dir / "edge-limits.map"
        self.socket_path = self.state_dir / "admin.sock"
        self.config_path = self.state_dir / "haproxy.cfg"
        self.pages_dir = self.state_dir / "pages"
        self.log_path = self.state_dir / "haproxy.log"
        self.process = None
        # how this router is named in the directory's acknowledgements
        self.name = f"{socket.gethostname()} {bind}"
        self._backends: dict[str, str] = {}  # pod -> its pool's address
        self._limits: dict[str, router.EdgeLimit] = {}
        # the limits thread's input, from the last sync: pods and host -> pod
        self._limits_input: tuple[list, dict[str, str]] = ([], {})
        self._limits_lock = threading.Lock()
        self._limits_due = threading.Event()
        self.socket = router.RouterSocket(self.socket_path, self.map_path)

    def _write_config(self) -> None:
        self.config_path.write_text(
            router.render_config(
                bind=self.bind,
                pods=self._backends,
                map_path=self.map_path,
                socket_path=self.socket_path,
                pages_dir=self.pages_dir,
                limits_path=self.limits_path,
                # the proxies before the router (Caddy): they name the client to
                # its per-client budget, as they do to the pods
                trusted_proxies=getattr(settings, "CMS_TRUSTED_PROXIES", ()),
            )
        )

    def _read_limits(self, pods: list, host_pods: dict[str, str]) -> dict[str, str]:
        self._limits = edge_limits.edge_limits(pods, host_pods, self._limits)
        return router.edge_limit_entries(self._limits)

    def start(self) -> None:
        """Write the config and the maps from the directory and start HAProxy."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        router.write_pages(self.pages_dir)
        pods = directory.pods_list()
        self._backends = _backends(pods)
        hosts = directory.host_map()
        router.write_map(self.map_path, hosts)
        router.write_map_entries(self.limits_path, self._read_limits(pods, hosts))
        self._write_config()
        self.process = router.start_haproxy(self.config_path, log_path=self.log_path)
        logger.info("router: %d pods, listening on %s", len(pods), self.bind)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
        try:
            directory.router_stopped(self.name)
        except directory.PodError:
            logger.warning("router: could not tell the directory it stopped")

    def sync(self) -> bool:
        """Apply the directory to HAProxy; return whether anything changed. The
        edge limits are asked of the limits thread (``sync_limits``)."""
        pods = directory.pods_list()
        changed = False
        if _backends(pods) != self._backends:
            logger.info("router: pods changed, reloading HAProxy's config")
            self._backends = _backends(pods)
            self._write_config()
            router.reload_haproxy(
                self.process, self.config_path, log_path=self.log_path
            )
            changed = True
        wanted, as_of = directory.host_map_as_of()
        if wanted != self.socket.hosts():
            self.socket.replace_hosts(wanted)
            changed = True
        directory.router_synced(self.name, as_of)
        with self._limits_lock:
            self._limits_input = (pods, wanted)
        self._limits_due.set()
        return changed

    def sync_limits(self) -> bool:
        """Read every pod's plans for the hosts of the last sync and apply them to
        HAProxy's edge limit map; return whether anything changed."""
        with self._limits_lock:
            pods, wanted = self._limits_input
        limits = self._read_limits(pods, wanted)
        if limits == self.socket.entries(self.limits_path):
            return False
        self.socket.replace_entries(self.limits_path, limits)
        return True

    def _follow_limits(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self._limits_due.wait(RESYNC_SECONDS):
                continue
            self._limits_due.clear()
            if stop.is_set():
                return
            try:
                self.sync_limits()
            except (router.RouterUnavailable, router.RouterCommandFailed, OSError):
                logger.exception("router: edge limits not applied; retrying")
                stop.wait(1.0)

    def run(self, stop: threading.Event) -> None:
        """Follow the directory until ``stop`` is set."""
        limits = threading.Thread(
            target=self._follow_limits, args=(stop,), name="edge-limits", daemon=True
        )
        limits.start()
        try:
            self._follow_directory(stop)
        finally:
            stop.set()
            self._limits_due.set()
            limits.join(timeout=10)

    def _follow_directory(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with directory.connect() as conn:
                    conn.execute(f"LISTEN {directory.CHANNEL}")
                    self.sync()
                    while not stop.is_set():
                        changed = any(
                            True for _ in conn.notifies(timeout=RESYNC_SECONDS)
                        )
                        # Read the map after the burst: one sync for many changes.
                        self.sync()
                        if changed:
                            logger.debug("router: synced after a directory change")
            except (
                directory.PodError,
                OSError,
                router.RouterUnavailable,
                router.RouterCommandFailed,
            ):
                logger.exception("router: directory or HAProxy unreachable; retrying")
                stop.wait(1.0)
