"""The router's runner: routing never waits for the edge limits.

Reading the edge limits means a connection to every pod's database; a pod whose
database does not answer must not hold up a route change, nor the acknowledgement a
move waits for. Here the directory and HAProxy's admin socket are stand-ins, so that
only the runner's own order of work is under test (the real router on two pods:
tests/tenants/test_pods.py)."""

import datetime as dt
import threading
import time

from tenants.pods import directory, edge_limits, router, routing
from tenants.pods.directory import Pod

POD = Pod("pod1", "postgresql://pod1.invalid/db", "", "127.0.0.1:8001", "active")


class FakeSocket:
    """HAProxy's runtime maps, as the runner sees them over the admin socket."""

    def __init__(self) -> None:
        self.host_map: dict[str, str] = {}
        self.limits: dict[str, str] = {}

    def hosts(self) -> dict[str, str]:
        return dict(self.host_map)

    def replace_hosts(self, hosts: dict[str, str]) -> None:
        self.host_map = dict(hosts)

    def entries(self, map_path) -> dict[str, str]:
        return dict(self.limits)

    def replace_entries(self, map_path, entries: dict[str, str]) -> None:
        self.limits = dict(entries)


def test_a_slow_pod_database_holds_up_neither_routing_nor_the_acknowledgement(
    monkeypatch, tmp_path
):
    acknowledged = []
    monkeypatch.setattr(directory, "pods_list", lambda: [POD])
    monkeypatch.setattr(
        directory,
        "host_map_as_of",
        lambda: ({"shop.example.test": "pod1"}, dt.datetime.now(dt.UTC)),
    )
    monkeypatch.setattr(directory, "router_synced", lambda *a: acknowledged.append(a))
    monkeypatch.setattr(directory, "router_stopped", lambda name: None)
    pod_answers = threading.Event()

    def slow_limits(pods, host_pods, previous):
        pod_answers.wait(10)  # the pod's database takes its time
        return dict.fromkeys(host_pods, router.EdgeLimit(40, 20, 10, "shop"))

    monkeypatch.setattr(edge_limits, "edge_limits", slow_limits)
    runner = routing.RouterRunner(bind="127.0.0.1:8000", state_dir=tmp_path)
    runner.socket = FakeSocket()
    runner._backends = routing._backends([POD])
    stop = threading.Event()
    following = threading.Thread(target=runner._follow_limits, args=(stop,))
    following.start()
    try:
        started = time.monotonic()
        assert runner.sync() is True
        took = time.monotonic() - started
        # routed and acknowledged while the pod's database has not answered
        assert runner.socket.host_map == {"shop.example.test": "pod1"}
        assert len(acknowledged) == 1
        assert took < 1.0
        assert runner.socket.limits == {}

        pod_answers.set()  # the limits follow once the pod answers
        deadline = time.monotonic() + 5
        while runner.socket.limits != {"shop.example.test": "40:20:10:shop"}:
            assert time.monotonic() < deadline, runner.socket.limits
            time.sleep(0.02)
    finally:
        stop.set()
        pod_answers.set()
        runner._limits_due.set()
        following.join(timeout=10)
    assert not following.is_alive()
