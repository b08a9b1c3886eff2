"""The router kept in step with the directory (``manage.py pods router``).

One process beside HAProxy: it writes HAProxy's config and map from the directory,
starts HAProxy, then LISTENs on the directory's ``cms_directory`` channel. Every
tenant created, domain added or tenant moved on any pod changes a directory row,
whose trigger notifies here; the host map is then compared with HAProxy's runtime map
and the difference applied over the admin socket (no reload: open connections stay).
A full comparison also runs every ``RESYNC_SECONDS`` in case a notification was lost
with the connection. Pods added or changed need a new backend: HAProxy is reloaded
gracefully with the new config (its old worker finishes what it serves).

Each sync also reads every pod's tenants' plans into the edge limit map
(tenants.pods.edge_limits), by which HAProxy refuses a flood before a pod.

After every sync the router records in the directory the time its map is as of
(``directory.router_synced``); a tenant's move waits for that before the source pod
lets the tenant go, so no request is routed to a pod that no longer knows its host.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

from tenants.pods import directory, edge_limits, router

logger = logging.getLogger(__name__)
RESYNC_SECONDS = 5.0


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
        self._pods: dict[str, str] = {}
        self._limits: dict[str, tuple[int, str]] = {}
        self.socket = router.RouterSocket(self.socket_path, self.map_path)

    def _pod_addresses(self) -> dict[str, str]:
        return {pod.name: pod.web for pod in directory.pods_list()}

    def _write_config(self) -> None:
        self.config_path.write_text(
            router.render_config(
                bind=self.bind,
                pods=self._pods,
                map_path=self.map_path,
                socket_path=self.socket_path,
                pages_dir=self.pages_dir,
                limits_path=self.limits_path,
            )
        )

    def _edge_limits(self, host_pods: dict[str, str]) -> dict[str, str]:
        self._limits = edge_limits.edge_limits(
            directory.pods_list(), host_pods, self._limits
        )
        return router.edge_limit_entries(self._limits)

    def start(self) -> None:
        """Write the config and the map from the directory and start HAProxy."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        router.write_pages(self.pages_dir)
        self._pods = self._pod_addresses()
        hosts = directory.host_map()
        router.write_map(self.map_path, hosts)
        router.write_map_entries(self.limits_path, self._edge_limits(hosts))
        self._write_config()
        self.process = router.start_haproxy(self.config_path, log_path=self.log_path)
        logger.info("router: %d pods, listening on %s", len(self._pods), self.bind)

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
        """Apply the directory to HAProxy; return whether anything changed."""
        pods = self._pod_addresses()
        changed = False
        if pods != self._pods:
            logger.info("router: pods changed, reloading HAProxy's config")
            self._pods = pods
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
        limits = self._edge_limits(wanted)
        if limits != self.socket.entries(self.limits_path):
            self.socket.replace_entries(self.limits_path, limits)
            changed = True
        return changed

    def run(self, stop: threading.Event) -> None:
        """Follow the directory until ``stop`` is set."""
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
