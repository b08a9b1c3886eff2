"""The noisy neighbour benchmark's view of a phase by block and by second
(bench/noisy_neighbour/run.py): a stall of one block must not hide in the pool."""

from types import SimpleNamespace

import pytest

from bench.noisy_neighbour import run as noisy_neighbour


def _block(latency_ms, *, stall_at: float | None = None, stall_ms: float = 400.0):
    """100 requests a second for 10 s at ``latency_ms``; a second-long stall from
    ``stall_at`` (seconds into the block)."""
    due = [index / 100 for index in range(1000)]
    latencies = [
        stall_ms
        if stall_at is not None and stall_at <= moment < stall_at + 1
        else latency_ms
        for moment in due
    ]
    return due, latencies


def test_a_stall_in_one_block_shows_in_that_block_only():
    schedule = _phase(stalled_round=1, rounds=3)

    part = noisy_neighbour.by_block_part([schedule], block=10)

    assert part["p99_ms_by_round"] == [10, 400, 10]
    assert part["max_ms_by_round"] == [10, 400, 10]
    # each round's own p99 stands on its own samples (a median of rounds needs them)
    assert part["samples_by_round"] == [1000, 1000, 1000]
    # pooled by second of the block, the one stall looks like a cost of second 4
    assert part["p99_ms_by_second"][4] == 400
    assert part["p99_ms_by_second"][3] == 10


def test_the_uncached_baseline_carries_its_floods_load_at_a_host_no_tenant_has():
    # the uncached quiet rate is a share of the capacity beside exactly this flood
    assert noisy_neighbour.CONTROL_FLOODS == {"uncached_baseline": "uncached_flood"}
    for control, flooded in noisy_neighbour.CONTROL_FLOODS.items():
        assert control in noisy_neighbour.PHASES
        assert flooded in noisy_neighbour.FLOODS
        # on the same pool (and its router) as the flood it stands in for
        assert (control in noisy_neighbour.UNCACHED_PHASES) == (
            flooded in noisy_neighbour.UNCACHED_PHASES
        )
    targets = noisy_neighbour.control_targets()
    assert {target.host for target in targets} == {noisy_neighbour.UNKNOWN_HOST}
    assert noisy_neighbour.UNKNOWN_HOST not in {
        noisy_neighbour.host(slug)
        for slug in (*noisy_neighbour.QUIET, noisy_neighbour.NOISY)
    }
    # from as many visitors as the flood
    assert len({target.client for target in targets}) == 64


def _wrk_block(requests: int, *, lost: int = 0) -> SimpleNamespace:
    """A control flood's 10 s block as wrk reports it: all answered 404."""
    return SimpleNamespace(
        statuses={404: requests},
        requests=requests,
        seconds=10.0,
        achieved_rate=requests / 10.0,
        connections=32,
        connect_errors=lost,
        write_errors=0,
        timeouts=0,
    )


def test_a_control_flood_is_summed_over_its_blocks():
    blocks = [_wrk_block(1000), _wrk_block(900, lost=3)]

    summary = noisy_neighbour.summarize_control(blocks, asked_rate=100.0)

    assert summary["statuses"] == {"404": 1900}
    assert summary["achieved_rate"] == pytest.approx(95.0)
    assert summary["worst_block_rate"] == 90.0
    assert summary["lost"] == 3
    assert summary["host"] == noisy_neighbour.UNKNOWN_HOST


def test_the_phases_order_is_reversed_every_other_round():
    """A block's position in its round (the uncached pool idle before the first
    uncached block, the router's window fresh for the first flood) falls on each
    side of every pair in turn."""
    blocks = noisy_neighbour.blocks_in_order(3)
    phases = noisy_neighbour.PHASES
    assert len(blocks) == 3 * len(phases)
    first, second, third = (
        tuple(phase for number, phase in blocks if number == round_number)
        for round_number in (1, 2, 3)
    )
    assert first == third == phases
    assert second == tuple(reversed(phases))
    assert [number for number, _ in blocks] == sorted(number for number, _ in blocks)
    for baseline, flood in (
        ("uncached_baseline", "uncached_flood"),
        ("baseline", "saturate"),
    ):
        assert first.index(baseline) < first.index(flood)
        assert second.index(flood) < second.index(baseline)


def test_a_capacity_is_the_best_of_probes_taken_in_turns():
    """A disturbance only lowers a throughput: one slow probe must not set the
    run's load, and the probes of different capacities alternate."""
    order = []
    readings = {"cached": iter([700.0, 2000.0, 1900.0]), "api": iter([800, 600, 750])}

    def probe(name):
        order.append(name)
        return next(readings[name])

    best, probes = noisy_neighbour.best_of_passes(
        {name: (lambda name=name: probe(name)) for name in readings}, passes=3
    )

    assert best == {"cached": 2000.0, "api": 800}
    assert probes == {"cached": [700.0, 2000.0, 1900.0], "api": [800, 600, 750]}
    assert order == ["cached", "api"] * 3
    assert noisy_neighbour.CAPACITY_PASSES == 3  # the default a run takes


def _machine(floor: float, per_read: float):
    """A machine whose busy share is ``floor`` plus ``per_read`` for each read a
    second of each quiet tenant, recording the rates probed."""
    probed = []

    def busy_at(rate):
        probed.append(rate)
        return min(1.0, floor + per_read * rate)

    return busy_at, probed


def _readings(*busy_shares: float):
    """A machine that reads ``busy_shares`` in turn, whatever the rate (a noisy
    one), recording the rates probed."""
    readings, probed = iter(busy_shares), []

    def busy_at(rate):
        probed.append(rate)
        return next(readings)

    return busy_at, probed


def test_the_uncached_rate_is_lowered_until_the_machine_has_headroom():
    """60 % of the pool's capacity kept the machine 85 % busy: the quiet rate
    comes down to what leaves the machine 50-60 % busy, the flood's own share (the
    floor) taken into account."""
    busy_at, probed = _machine(floor=0.15, per_read=0.02)  # 35/s: 85 % busy

    chosen, probes = noisy_neighbour.with_headroom(busy_at, 35.0, max_busy=0.6)

    assert probed[0] == noisy_neighbour.HEADROOM_FLOOR_RATE
    assert probes[0]["busy"] == pytest.approx(0.17)
    assert probes[1] == {"rate": 35.0, "busy": pytest.approx(0.85)}
    assert [probe["rate"] for probe in probes] == probed
    assert chosen == probes[-1]  # the rate run was probed
    assert 0.5 <= chosen["busy"] <= 0.6
    assert chosen["rate"] == pytest.approx(20.0, abs=0.1)


def test_a_probe_read_high_does_not_leave_the_run_far_below_its_headroom():
    """A few seconds' reading is noisy: 92 % at the asked rate sends the next probe
    low, and one under the band raises the rate again, between the two."""
    busy_at, probed = _readings(0.20, 0.92, 0.40, 0.57)

    chosen, probes = noisy_neighbour.with_headroom(busy_at, 24.4, max_busy=0.6)

    assert len(probes) == 4
    first_low, second = probed[2], probed[3]
    assert 1.0 < first_low < second < 24.4
    assert chosen == {"rate": second, "busy": 0.57}


def test_a_machine_with_headroom_keeps_the_asked_rate():
    """The headroom only ever lowers the rate: a machine with room to spare runs
    the share of capacity asked."""
    busy_at, probed = _machine(floor=0.1, per_read=0.01)

    chosen, probes = noisy_neighbour.with_headroom(busy_at, 35.0, max_busy=0.6)

    assert chosen == {"rate": 35.0, "busy": pytest.approx(0.45)}
    assert probed == [noisy_neighbour.HEADROOM_FLOOR_RATE, 35.0]


def test_the_highest_rate_within_the_slack_is_run():
    """Between probes over and under the band the highest rate still within the
    slack over ``max_busy`` is the one run (a harder test, not an easier one)."""
    busy_at, _ = _readings(0.2, 0.9, 0.64, 0.3, 0.66, 0.45)

    chosen, probes = noisy_neighbour.with_headroom(busy_at, 30.0, max_busy=0.6)

    assert len(probes) == 1 + noisy_neighbour.HEADROOM_PROBES
    within = [probe for probe in probes[1:] if probe["busy"] <= 0.65]
    assert chosen == max(within, key=lambda probe: probe["rate"])
    assert chosen["busy"] == 0.64


def test_a_machine_the_flood_alone_keeps_busy_ends_on_its_last_probe():
    """When the flood's generator and router alone exceed the headroom, no quiet
    rate helps: the probes stop at the floor's rate, the chosen one over the limit
    (the run's check makes that INVALID)."""
    busy_at, probed = _machine(floor=0.7, per_read=0.01)

    chosen, probes = noisy_neighbour.with_headroom(busy_at, 35.0, max_busy=0.6)

    assert chosen == probes[-1]
    assert chosen["rate"] == noisy_neighbour.HEADROOM_FLOOR_RATE
    assert chosen["busy"] > 0.6 + noisy_neighbour.HEADROOM_SLACK
    assert len(probes) <= 1 + noisy_neighbour.HEADROOM_PROBES


def test_the_busy_share_is_read_in_the_loads_steady_part(monkeypatch):
    """The client processes' start (before the block) and its first second are
    not the load's: the busy share is read from a second after the block starts
    to before its end, beside the flood."""
    events = []
    clock = {"start": None}

    def run_block(port, schedules, seconds, flood=None, on_start=None):
        events.append(("block", port, seconds, flood))
        clock["start"] = noisy_neighbour.time.time() + 0.05
        on_start(clock["start"])
        noisy_neighbour.time.sleep(seconds)

    def host_counters():
        events.append(("read", noisy_neighbour.time.time() - clock["start"]))
        return len(events)

    monkeypatch.setattr(noisy_neighbour, "run_block", run_block)
    monkeypatch.setattr(noisy_neighbour, "host_counters", host_counters)
    monkeypatch.setattr(
        noisy_neighbour,
        "host_delta",
        lambda before, after: {"busy_share": 0.42 if after > before else -1},
    )

    busy = noisy_neighbour.busy_during(8000, ["quiet"], 1.8, "flood")

    assert busy == 0.42
    assert events[0] == ("block", 8000, 1.8, "flood")
    (_, first), (_, last) = events[1:]
    assert first >= 0.99
    assert last == pytest.approx(1.3, abs=0.1)


def test_an_uncached_block_is_lengthened_to_hold_a_p99s_samples():
    """A quiet rate lowered for headroom must not leave a block short of the
    thousand requests a p99 needs (the run would be INVALID): the uncached blocks
    grow to hold them with a margin, in whole seconds, and never shrink."""
    needed = noisy_neighbour.MIN_P99_SAMPLES * noisy_neighbour.UNCACHED_SAMPLES_MARGIN
    quiet = len(noisy_neighbour.QUIET)

    assert noisy_neighbour.uncached_block_seconds(20.0, 30.0) == 20.0  # 1,800 fit
    longer = noisy_neighbour.uncached_block_seconds(20.0, 14.4)
    assert longer == 28.0
    assert longer * quiet * 14.4 >= needed > (longer - 1) * quiet * 14.4
    assert noisy_neighbour.uncached_block_seconds(60.0, 1.0) == 400.0


def _phase(stalled_round: int | None = None, rounds: int = 5):
    """One schedule's requests over ``rounds`` blocks of 10 s, 10 ms each; a stall
    of one second in one block."""
    schedule = SimpleNamespace(due_s=[], latencies_ms=[])
    for number in range(rounds):
        due, latencies = _block(10, stall_at=4 if number == stalled_round else None)
        schedule.due_s += [10 * number + moment for moment in due]
        schedule.latencies_ms += latencies
    return schedule


def test_every_quiet_ratio_is_a_median_of_rounds_one_stalled_block_does_not_move():
    """The 20x flood's and the cache-busting flood's ratios too: a pooled p99 is
    the worst block's (a round with CPU stolen by the hypervisor read 1.3 where the
    rounds' median read 1.06), so each ratio is the median of the rounds' own."""
    flood, baseline = _phase(stalled_round=1), _phase()
    by_part = {
        "flood": noisy_neighbour.by_block_part([flood], block=10),
        "baseline": noisy_neighbour.by_block_part([baseline], block=10),
    }
    pooled = {"flood": flood.latencies_ms, "baseline": baseline.latencies_ms}
    checked = []
    run = SimpleNamespace(check_p99=lambda label, samples: checked.append(samples))

    ratio = noisy_neighbour.round_ratio(by_part, pooled, "flood", "baseline", run)

    assert ratio["per_round"] == [1.0, 40.0, 1.0, 1.0, 1.0]
    assert ratio["median"] == 1.0
    assert ratio["pooled"] == 40.0  # what the pooled figure would have said
    assert checked == [1000] * 10  # every block of both phases holds a p99's samples
    assert noisy_neighbour.ROUND_RATIOS["quiet_p99_ratio"] == ("flood", "baseline")
    assert noisy_neighbour.ROUND_RATIOS["bust_quiet_p99_ratio"] == ("bust", "baseline")
    assert noisy_neighbour.ROUND_RATIOS["uncached_quiet_p99_ratio"] == (
        "uncached_flood",
        "uncached_baseline",
    )
    assert len(noisy_neighbour.ROUND_RATIOS) == 6
