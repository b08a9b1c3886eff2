"""Where the CPU goes during a benchmark's blocks (bench/common.py, ``CpuMeter``): a
process group's figure holds what its processes used, the ones that ended during the
block too, and nothing of another group's; ``other`` is the machine's less the
groups'."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench import common
from bench.common import (
    CpuMeter,
    cpu_of,
    describe_cpu,
    process_trees,
    processes_named,
    this_process_cpu_seconds,
)

# Burns CPU (process time, so a loaded machine only makes it slower) or waits for a
# line on stdin, step by step as its arguments say, printing each burn when done.
WORKER = """
import sys, time
for step in sys.argv[1:]:
    if step == "wait":
        sys.stdin.readline()
    else:
        end = time.process_time() + float(step)
        while time.process_time() < end:
            pass
        print(step, flush=True)
"""

# A master that replaces its worker, as gunicorn's does when it recycles one: its
# first worker has burnt 0.6 s before it says it is ready; told to go on, the worker
# burns 0.3 s and exits, the master waits for it and starts another, which burns
# 0.3 s and stays until the master's stdin closes.
MASTER = f"""
import subprocess, sys
WORKER = {WORKER!r}
def start(*steps):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *steps],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
first = start("0.6", "wait", "0.3")
first.stdout.readline()
print("ready", flush=True)
sys.stdin.readline()
first.stdin.write("go\\n")
first.stdin.flush()
first.wait()
second = start("0.3", "wait")
second.stdout.readline()
print("replaced", flush=True)
sys.stdin.readline()
second.stdin.close()
second.wait()
"""


def _start(script: str, *steps: str, executable: str = sys.executable):
    return subprocess.Popen(
        [executable, "-c", script, *steps],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _tell(process: subprocess.Popen) -> None:
    process.stdin.write("go\n")
    process.stdin.flush()


def _end(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.stdin.close()
        process.wait(timeout=10)


def test_a_process_burning_cpu_counts_in_its_group_and_not_in_another():
    burner = _start(WORKER, "wait", "0.3", "wait")
    idler = _start(WORKER, "wait", "wait")
    try:
        meter = CpuMeter(
            {
                "busy": cpu_of(process_trees([burner.pid])),
                "idle": cpu_of(process_trees([idler.pid])),
            }
        )
        with meter.block("flood"):
            _tell(burner)
            assert burner.stdout.readline().strip() == "0.3"
    finally:
        _end(burner, idler)

    spent = meter.seconds()["flood"]
    assert spent["busy"] >= 0.15
    assert spent["idle"] < 0.05
    assert spent["machine"] >= 0.15
    cores = meter.cores()["flood"]
    assert cores["busy"] == pytest.approx(spent["busy"] / spent["wall"])


def test_a_worker_replaced_during_a_block_still_counts_in_its_masters_group():
    master = _start(MASTER)
    try:
        assert master.stdout.readline().strip() == "ready"
        meter = CpuMeter({"pool": cpu_of(process_trees([master.pid]))})
        with meter.block("flood"):
            _tell(master)
            assert master.stdout.readline().strip() == "replaced"
    finally:
        _end(master)

    # 0.3 s by the first worker (not its 0.6 s before the block) and 0.3 s by its
    # replacement: live workers alone at both ends would count 0.3 - 0.6 + 0.3
    assert 0.45 <= meter.seconds()["flood"]["pool"] <= 0.85


def test_a_service_found_by_its_process_name_counts(tmp_path: Path):
    # a process is named after the file it runs: a link of its own to python
    named = tmp_path / "cpumeter-test"
    named.symlink_to(sys.executable)
    burner = _start(WORKER, "wait", "0.3", "wait", executable=str(named))
    bystander = _start(WORKER, "wait", "0.3", "wait")
    try:
        found = processes_named("cpumeter-test")
        assert [process.pid for process in found()] == [burner.pid]
        meter = CpuMeter({"service": cpu_of(found)})
        with meter.block("flood"):
            _tell(bystander)
            assert bystander.stdout.readline().strip() == "0.3"
        with meter.block("baseline"):
            _tell(burner)
            assert burner.stdout.readline().strip() == "0.3"
    finally:
        _end(burner, bystander)

    assert meter.seconds()["flood"]["service"] < 0.05
    assert meter.seconds()["baseline"]["service"] >= 0.15


def test_this_process_counts_the_children_it_waited_for():
    before = this_process_cpu_seconds()
    subprocess.run([sys.executable, "-c", WORKER, "0.3"], check=True)
    assert this_process_cpu_seconds() - before >= 0.15


def test_other_is_the_machine_less_the_groups_and_never_negative(monkeypatch):
    machine = iter([100.0, 103.0, 200.0, 201.0])
    monkeypatch.setattr(common, "machine_busy_cpu_seconds", lambda: next(machine))
    pool = iter([10.0, 11.5, 20.0, 20.5])
    # a group read as more than the machine used (counters read one after another)
    overcounted = iter([0.0, 0.5, 0.0, 2.0])
    meter = CpuMeter(
        {"pool": lambda: next(pool), "overcounted": lambda: next(overcounted)}
    )

    with meter.block("baseline"):
        pass
    with meter.block("flood"):
        pass

    spent = meter.seconds()
    assert spent["baseline"]["other"] == pytest.approx(3.0 - 1.5 - 0.5)
    assert spent["baseline"]["machine"] == pytest.approx(3.0)
    assert spent["flood"]["other"] == 0.0
    for kind, cores in meter.cores().items():
        assert cores["other"] >= 0
        assert cores["machine"] == pytest.approx(
            spent[kind]["machine"] / spent[kind]["wall"]
        )


def test_the_blocks_of_a_kind_add_up():
    counter = iter([0.0, 1.0, 5.0, 7.0])
    meter = CpuMeter({"pool": lambda: next(counter)})
    for _ in range(2):
        with meter.block("flood"):
            pass

    assert meter.seconds()["flood"]["pool"] == pytest.approx(1.0 + 2.0)


def test_the_machine_counts_cpu_burnt_anywhere():
    before = common.machine_busy_cpu_seconds()
    subprocess.run([sys.executable, "-c", WORKER, "0.3"], check=True)
    assert common.machine_busy_cpu_seconds() - before >= 0.15


def test_one_line_per_kind_of_block_names_every_group():
    line = describe_cpu(
        "uncached_flood",
        {"pools": 1.21, "wrk": 0.14, "other": 0.05, "machine": 1.81},
        cpus=2,
    )
    assert line == (
        "cpu uncached_flood blocks: pools 1.21, wrk 0.14, other 0.05, "
        "machine 1.81 of 2 cores"
    )


def test_the_meter_keeps_machine_and_other_for_itself():
    with pytest.raises(ValueError, match="meter's own"):
        CpuMeter({"machine": lambda: 0.0})


def test_the_noisy_neighbour_run_meters_every_group():
    from bench.noisy_neighbour import run as noisy_neighbour

    pool = _start(WORKER, "wait")
    try:
        router = noisy_neighbour.EdgeRouter(
            pool="uncached", port=0, config=Path(), socket=Path(), log=Path()
        )
        router.process = pool  # any live process will do for its tree
        meter = noisy_neighbour.cpu_meter({"uncached": pool}, {"uncached": router})
        with meter.block("uncached_flood"):
            pass
    finally:
        _end(pool)

    assert list(meter.cores()["uncached_flood"]) == [
        "pools", "wrk", "clients", "routers", "redis", "postgres", "other", "machine",
    ]  # fmt: skip


def test_every_wrk_run_counts_in_the_wrk_group():
    import http.server
    import threading

    from bench.loadgen import Target, wrk_closed_loop, wrk_cpu_seconds

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", common.free_port()), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    meter = CpuMeter({"wrk": wrk_cpu_seconds})
    try:
        with meter.block("flood"):
            result = wrk_closed_loop(
                server.server_address[1], [Target("a.localhost")], seconds=1
            )
    finally:
        server.shutdown()

    assert result.cpu_seconds > 0
    assert meter.seconds()["flood"]["wrk"] == pytest.approx(result.cpu_seconds)
