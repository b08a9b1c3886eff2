"""The benchmarks' method (bench/common.py, bench/loadgen.py, bench/report.py): what a
sceptic relies on when reading a RESULT line."""

import argparse
import http.server
import json
import os
import threading

import psycopg
import pytest

from bench import common, report
from bench.common import (
    HostCounters,
    database_url_named,
    describe_host,
    host_counters,
    host_delta,
)
from bench.loadgen import Target, wrk_closed_loop


def test_interleaved_rounds_alternate_the_order():
    calls = []
    measured = common.interleaved(
        {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
        rounds=4,
    )

    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert measured == {"a": [1, 1, 1, 1], "b": [2, 2, 2, 2]}


def test_bootstrap_interval_surrounds_the_ratio_and_widens_with_noise():
    steady = common.bootstrap_ratio([100, 101, 99, 100, 100], [50, 50, 51, 49, 50])
    noisy = common.bootstrap_ratio([100, 160, 60, 130, 80], [50, 50, 51, 49, 50])

    assert steady[0] == pytest.approx(2.0)
    assert steady[1] <= steady[0] <= steady[2]
    assert noisy[2] - noisy[1] > steady[2] - steady[1]


def test_a_p99_needs_a_thousand_samples():
    assert common.tail(list(range(999))) is None
    assert common.tail(list(range(1000))) == 989
    assert common.tail(list(range(100)), 90) == 89  # a p90 needs 100


def test_floods_are_at_least_twice_the_capacity():
    assert common.flood_rate(800) == 1600
    with pytest.raises(ValueError):
        common.flood_rate(800, factor=1.5)
    with pytest.raises(RuntimeError):
        common.calibrated_rate(0)


def _run(tmp_path, monkeypatch, argv, name="demo"):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    return common.Run(name, parser, parser.parse_args(argv))


def test_an_invalid_run_prints_no_result_and_exits_non_zero(
    tmp_path, monkeypatch, capsys
):
    run = _run(tmp_path, monkeypatch, ["--seconds", "2"])
    run.check_p99("quiet tenants", 42)

    code = run.finish({"ratio": 1.0}, {"samples": 42})

    printed = capsys.readouterr().out
    assert code == 1
    assert "RESULT" not in printed
    assert printed.splitlines()[-1].startswith("INVALID quiet tenants: 42 samples")
    (record,) = (tmp_path / "demo").glob("*.json")
    saved = json.loads(record.read_text())
    assert (saved["valid"], saved["default_args"]) == (False, False)
    assert saved["args"] == {"seconds": 2.0}
    assert saved["machine"]["cpus"] >= 1 and saved["commit"]


def test_a_valid_run_prints_its_result_last(tmp_path, monkeypatch, capsys):
    run = _run(tmp_path, monkeypatch, [])
    code = run.finish({"ratio": 0.5, "errors": 0, "identical": True}, {})

    assert code == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "RESULT ratio=0.500 errors=0 identical=1"


def test_a_run_with_a_product_setting_in_its_environment_is_not_a_default_run(
    tmp_path, monkeypatch, capsys
):
    for name in common.product_settings():
        monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")  # where, not what
    monkeypatch.setenv("CMS_VAR_DIR", str(tmp_path))
    assert _run(tmp_path, monkeypatch, []).default_args
    capsys.readouterr()

    monkeypatch.setenv("CMS_BUSY_POOL_BURST_SECONDS", "0.25")
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    run = _run(tmp_path, monkeypatch, [])
    run.finish({"ratio": 1.0}, {})

    printed = capsys.readouterr().out
    assert "CMS_BUSY_POOL_BURST_SECONDS=0.25" in printed.splitlines()[0]
    saved = json.loads(max((tmp_path / "demo").glob("*.json")).read_text())
    assert saved["default_args"] is False
    assert saved["settings"] == {
        "CMS_BUSY_POOL_BURST_SECONDS": "0.25",
        "GUNICORN_WORKERS": "3",
    }
    assert report.headline_run([saved], saved["code"]) is None


def _record(folder, started, *, valid=True, default=True, code="c1", ratio=1.0):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{started}.json").write_text(
        json.dumps(
            {
                "started": started,
                "valid": valid,
                "default_args": default,
                "code": code,
                "dirty": False,
                "commit": "abc",
                "machine": {"cpus": 2, "load_average": [0.1]},
                "result": {"cached_vs_ceiling": ratio},
            }
        )
    )


def test_the_headline_is_the_latest_valid_default_run_of_this_code_not_the_best(
    tmp_path, monkeypatch
):
    folder = tmp_path / "overhead"
    _record(folder, "2026-12-01T10:00:00+00:00", ratio=0.9)  # the best
    _record(folder, "2026-12-01T11:00:00+00:00", ratio=0.6)  # the latest
    _record(folder, "2026-12-01T12:00:00+00:00", ratio=0.95, valid=False)
    _record(folder, "2026-12-01T13:00:00+00:00", ratio=0.99, default=False)
    _record(folder, "2026-12-01T14:00:00+00:00", ratio=0.97, code="older")
    monkeypatch.setattr(report, "RESULTS", tmp_path)

    table = report.table(code="c1")

    (row,) = [line for line in table.splitlines() if line.startswith("| overhead")]
    assert "cached_vs_ceiling=0.6" in row
    assert "cached_vs_ceiling >= 0.7: **not met**" in row
    assert "| provisioning | no run on record" in table


def test_the_report_rewrites_only_the_generated_table():
    document = "# B\n\nintro\n\n" + report.START + "\nold\n" + report.END + "\n\nrest\n"

    rendered = report.render(document, report.START + "\nnew\n" + report.END)

    assert rendered == "# B\n\nintro\n\n" + report.START + "\nnew\n" + report.END + (
        "\n\nrest\n"
    )


class _Echo(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        _Echo.seen.append(
            (self.headers["Host"], self.path, self.headers.get("X-Forwarded-For"))
        )
        status = 404 if self.path.startswith("/missing") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_wrk_sends_each_targets_host_path_and_client_and_counts_statuses():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", common.free_port()), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Echo.seen.clear()
    try:
        result = wrk_closed_loop(
            server.server_address[1],
            [
                Target("a.localhost", "/page/"),
                Target("b.localhost", "/missing", "1.2.3.4"),
            ],
            seconds=1,
            connections=2,
        )
        busted = wrk_closed_loop(
            server.server_address[1],
            [Target("a.localhost", "/page/")],
            seconds=1,
            connections=1,
            bust_cache=True,
        )
    finally:
        server.shutdown()

    assert result.requests > 10
    assert set(result.statuses) == {200, 404}
    assert result.ok + result.statuses[404] == result.requests
    assert result.not_ok == result.statuses[404]
    assert ("a.localhost", "/page/", None) in _Echo.seen
    assert ("b.localhost", "/missing", "1.2.3.4") in _Echo.seen
    busting = [path for host, path, _ in _Echo.seen if path.startswith("/page/?b=")]
    assert len(set(busting)) == len(busting) >= busted.requests - 2


def test_an_open_loop_on_time_reports_the_rate_it_was_asked_for():
    from bench.loadgen import Schedule, open_loop

    server = http.server.ThreadingHTTPServer(("127.0.0.1", common.free_port()), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # 2.5 s at 0.9/s is 2 requests: the rate is theirs, not 2 / 2.5 s
        slow, fast = open_loop(
            server.server_address[1],
            [Schedule("a.localhost", rate=0.9), Schedule("b.localhost", rate=40)],
            seconds=2.5,
        )
    finally:
        server.shutdown()

    assert (slow.requests, fast.requests) == (2, 100)
    assert slow.achieved_rate == pytest.approx(0.9, rel=0.05)
    assert fast.achieved_rate == pytest.approx(40, rel=0.1)
    assert len(fast.client_lag_ms) == 100


def _open_loop_result(*, asked: float, achieved: float, lag_p99_ms: float):
    from types import SimpleNamespace

    return SimpleNamespace(
        asked_rate=asked,
        achieved_rate=achieved,
        client_lag_p99_ms=lag_p99_ms,
        schedule=SimpleNamespace(connections=64),
    )


def test_an_open_loop_short_of_its_rate_invalidates_unless_over_capacity_by_design(
    tmp_path, monkeypatch
):
    short = _open_loop_result(asked=78.6, achieved=62.2, lag_p99_ms=1)
    strict = _run(tmp_path, monkeypatch, [])
    assert not strict.check_open_loop("shared spike", short)
    assert not strict.valid
    assert "all 64 connections were waiting on the server" in strict.problems[0]

    by_design = _run(tmp_path, monkeypatch, [])
    assert by_design.check_open_loop(
        "isolated spike", short, over_capacity_by_design=True
    )
    assert by_design.valid
    assert "62.2 req/s sent of 78.6 asked" in by_design.notes[0]

    starved = _open_loop_result(asked=78.6, achieved=62.2, lag_p99_ms=500)
    assert not by_design.check_open_loop(
        "isolated spike", starved, over_capacity_by_design=True
    )
    assert "the load generator was starved" in by_design.problems[0]


def test_shared_vs_isolated_loads_long_enough_for_a_p99_of_every_group():
    from bench.shared_vs_isolated.run import seconds_for_samples

    # the first default run: 7 quiet tenants at 2.35/s for 60 s gave 980 samples
    seconds = seconds_for_samples(60, spike_rate=78.6, quiet_rate=2.35, tenants=8)
    assert seconds * 7 * 2.35 >= 1.1 * common.MIN_P99_SAMPLES
    # enough already; and a slow spiking tenant is a group of its own
    assert seconds_for_samples(60, spike_rate=78.6, quiet_rate=20, tenants=8) == 60
    slow_spike = seconds_for_samples(60, spike_rate=10, quiet_rate=20, tenants=8)
    assert slow_spike * 10 >= 1.1 * common.MIN_P99_SAMPLES


def test_shared_vs_isolated_holds_the_spike_to_what_the_shared_pool_can_carry():
    """The chain of 2026-12-03: one worker 57/s, the shared pool 98/s, a spike of
    1.25 x 57 with the quiet tenants put the pool at 88 % and its own spike fell
    behind its schedule. Held below, or INVALID when that leaves no spike."""
    from bench.shared_vs_isolated.run import spike_rate_for

    parser = argparse.ArgumentParser()
    args = argparse.Namespace(spike_factor=1.25, max_shared_load=0.8, quiet_load=0.15)
    run = common.Run("shared_vs_isolated", parser, args)

    rate = spike_rate_for(args, run, pool_capacity=98, worker_capacity=57)
    assert rate == pytest.approx((0.8 - 0.15) * 98)
    assert 57 < rate < 1.25 * 57 and run.valid
    # a pool with room takes the whole spike
    assert spike_rate_for(args, run, pool_capacity=400, worker_capacity=57) == 1.25 * 57
    assert run.valid
    # one worker alone near the whole pool: no spike beyond it fits
    spike_rate_for(args, run, pool_capacity=70, worker_capacity=57)
    assert not run.valid and "one isolated worker" in run.problems[0]


def test_a_benchmarks_code_is_the_product_the_shared_modules_and_its_own_folder(
    monkeypatch,
):
    """A fix to one benchmark leaves every other's headline standing; a change to
    the product or to a shared bench module drops them all."""
    files = {
        "bench/common.py": "c1",
        "bench/a/run.py": "a1",
        "bench/b/run.py": "b1",
        "bench/results/a/x.json": "r1",
        "tenants/models.py": "t1",
    }

    def code(benchmark: str, changed: dict[str, str] | None = None) -> str:
        listing = "\n".join(
            f"100644 blob {blob}\t{path}"
            for path, blob in (files | (changed or {})).items()
        )

        def git(*args: str) -> str:
            calls.append(args)
            return listing if args[0] == "ls-tree" else ""

        monkeypatch.setattr(common, "_git", git)
        return common.code_version(benchmark)["code"]

    calls: list[tuple[str, ...]] = []

    before = code("a")
    assert code("a", {"bench/b/run.py": "b2"}) == before
    assert code("a", {"bench/results/a/x.json": "r2"}) == before
    assert code("a", {"bench/a/run.py": "a2"}) != before
    assert code("a", {"bench/common.py": "c2"}) != before
    assert code("a", {"tenants/models.py": "t2"}) != before
    assert code("b") != before
    # the tests' helpers that benchmarks start their stacks with are code too
    listed = next(call for call in calls if call[0] == "ls-tree")
    assert {"tests/pods.py", "tests/private_stack.py", "tests/integration.py"} <= set(
        listed
    )


def test_client_addresses_are_distinct_hosts_of_their_network():
    assert common.client_addresses("203.0.113.0/24", 3) == (
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
    )
    visitors = common.client_addresses("198.18.0.0/15", 1000)
    assert len(set(visitors)) == 1000 and visitors[255] == "198.18.1.0"
    with pytest.raises(ValueError, match="fewer than 300"):
        common.client_addresses("192.0.2.0/24", 300)


def test_provisioning_compares_the_fleets_with_the_same_spread_of_visitors():
    """The first default run: wrk from one address met the plan's per-client share
    on the 10-tenant fleet (546 refusals) and never on the 1,000-tenant one."""
    from bench.provisioning.run import VISITORS, visitor_targets

    small = visitor_targets([f"s{i}.localhost" for i in range(10)])
    large = visitor_targets([f"l{i}.localhost" for i in range(1000)])
    for targets, hosts in ((small, 10), (large, 1000)):
        assert len({t.client for t in targets}) == VISITORS
        assert len({t.host for t in targets}) == hosts
    # each small tenant's load is spread over a hundred visitors
    assert len({t.client for t in small if t.host == "s0.localhost"}) == 100


def test_a_blocks_host_figures_tell_stolen_time_io_wait_and_checkpoints():
    """Read around a block, they tell a stall caused outside the product (time the
    hypervisor stole, I/O wait, a checkpoint) from one the product caused."""
    # The counters are the whole server's. Ask its maintenance database: the one
    # DATABASE_URL names may not exist (CI names cms_ci; only test_cms_ci is created).
    server = database_url_named(os.environ["DATABASE_URL"], "postgres")
    before = host_counters(server)
    assert before.checkpoints is not None  # PostgreSQL answered
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute("CHECKPOINT")
    measured = host_delta(before, host_counters(server))
    assert measured["checkpoints"] >= 1
    assert 0 <= measured["steal_share"] <= 1
    assert 0 <= measured["busy_share"] <= 1

    cpu = dict.fromkeys(
        ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), 0
    )
    later = cpu | {"user": 50, "idle": 30, "iowait": 10, "steal": 10}
    shares = host_delta(HostCounters(cpu, None, None), HostCounters(later, None, None))
    assert (shares["steal_share"], shares["iowait_share"], shares["busy_share"]) == (
        0.1,
        0.1,
        0.6,
    )
    assert shares["checkpoints"] is None  # unknown, not zero
    assert describe_host([shares]) == "steal 10.0% iowait 10.0% busy 60%"
