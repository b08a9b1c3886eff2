"""The pods benchmark's pod-down load (bench/pods/run.py): the rate is lowered until
the whole machine has headroom, so that its p99s measure a pod's failure and not a
saturated machine."""

from types import SimpleNamespace

import pytest

from bench.pods import run as pods


@pytest.fixture
def machine(monkeypatch):
    """A machine whose busy share grows with the rate the open loop asks of it:
    ``idle`` plus ``per_request`` per request a second (what the probes read)."""
    state = SimpleNamespace(idle=0.05, per_request=0.0005, asked=[], rate=0.0)

    def open_loop(port, schedules, *, seconds):
        state.rate = schedules[0].rate
        state.asked.append((schedules[0].rate, schedules[1].rate, seconds))

    monkeypatch.setattr(pods, "open_loop", open_loop)
    monkeypatch.setattr(pods, "host_counters", lambda: None)

    def host_delta(before, after):
        return {"busy_share": state.idle + state.per_request * state.rate}

    monkeypatch.setattr(pods, "host_delta", host_delta)
    return state


def _pods():
    return SimpleNamespace(router_port=8000)


PATHS = {pods.NEIGHBOUR: ["/"], pods.MOVING: ["/"]}


def test_the_pod_down_load_is_lowered_until_the_machine_has_headroom(machine):
    args = SimpleNamespace(max_busy=0.6)

    rate, dead_rate, probes = pods.with_headroom(_pods(), args, PATHS, 1500, 150)

    # 1,500 req/s would keep it 80 % busy: lowered in proportion, the dead pod's
    # visitors with it
    assert probes[0] == {"rate": 1500, "dead_pod_tenant_rate": 150, "busy": 0.8}
    # within what makes a valid run, each probe less busy than the one before
    assert probes[-1]["busy"] <= args.max_busy + pods.HEADROOM_SLACK
    assert [p["busy"] for p in probes] == sorted(p["busy"] for p in probes)[::-1]
    assert rate <= probes[-1]["rate"] < 1500
    assert dead_rate == pytest.approx(rate / 10)
    # a warm-up first, then the probes, none of them measured blocks
    assert machine.asked[0][2] == 2
    assert [seconds for *_, seconds in machine.asked[1:]] == [
        pods.HEADROOM_PROBE_SECONDS
    ] * len(probes)


def test_a_machine_with_headroom_keeps_the_asked_rate(machine):
    args = SimpleNamespace(max_busy=0.6)

    rate, dead_rate, probes = pods.with_headroom(_pods(), args, PATHS, 700, 70)

    assert (rate, dead_rate) == (700, 70)
    assert len(probes) == 1 and probes[0]["busy"] == pytest.approx(0.4)


def test_probes_stop_after_their_number_even_when_the_machine_stays_busy(machine):
    machine.idle = 0.7  # busy whatever the load: the run must say so (INVALID)
    args = SimpleNamespace(max_busy=0.6)

    _, _, probes = pods.with_headroom(_pods(), args, PATHS, 1500, 150)

    assert len(probes) == pods.HEADROOM_PROBES
    assert probes[-1]["busy"] > args.max_busy + pods.HEADROOM_SLACK
