"""CPU quotas for the benchmark's pools (Linux cgroups, v1 ``cpu`` or v2 ``cpu.max``).

Isolated compute per tenant means each tenant has its slice of the machine and no
more: a container or VM with a CPU limit. Pools that are merely separate processes on
one machine are not isolated in what matters for a spike: the kernel lends a spiking
pool every core its idle neighbours leave, which is pooling again, one level down (on
2 cores one such "isolated" worker had a whole core, ~0.7 of the 8-worker pool, and
the latency claim could not be tested). So every pool in the benchmark runs in a
cgroup of its own limited to its share of the cores, the shared pool too: the same
total budget on both sides.

Needs root (or a delegated cgroup tree); without one ``cpu_quota`` raises
``QuotaUnavailable`` naming what is missing, and the benchmark stops.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel's floor


class QuotaUnavailable(RuntimeError):
    """No cgroup with a CPU limit can be made here."""


@dataclass
class CpuQuota:
    """One cgroup limited to ``cores`` CPUs; a process put in it by ``enter`` (as a
    child's ``preexec_fn``) takes its children along."""

    path: Path
    cores: float
    version: int

    def enter(self) -> None:
        """Move the calling process into the cgroup (run in the child, before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def holds(self, pid: int) -> bool:
        """Whether process ``pid`` runs in this cgroup."""
        relative = "/" + str(self.path.relative_to(self._hierarchy()))
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            wanted = (
                "cpu" in controllers.split(",")
                if self.version == 1
                else not controllers
            )
            if wanted and where == relative:
                return True
        return False

    def throttled_seconds(self) -> float:
        """CPU time the kernel held the cgroup's processes back by its quota."""
        stat = dict(
            line.split()[:2]
            for line in (self.path / "cpu.stat").read_text().splitlines()
            if line.strip()
        )
        if self.version == 1:
            return int(stat.get("throttled_time", 0)) / 1e9  # ns
        return int(stat.get("throttled_usec", 0)) / 1e6

    def remove(self, timeout: float = 10) -> None:
        """Delete the cgroup once its processes are gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _hierarchy(self) -> Path:
        return CGROUP_ROOT / "cpu" if self.version == 1 else CGROUP_ROOT


def cpu_quota(name: str, cores: float) -> CpuQuota:
    """A new cgroup ``name`` limited to ``cores`` CPUs (a fraction is a share of one
    core's time in every 100 ms period)."""
    if not cores > 0:
        raise ValueError(f"a CPU quota needs cores above 0, not {cores!r}")
    quota = max(MIN_QUOTA_US, round(cores * PERIOD_US))
    v1 = CGROUP_ROOT / "cpu"
    try:
        if (v1 / "cpu.cfs_quota_us").exists():
            path = v1 / name
            path.mkdir(exist_ok=True)
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota))
            return CpuQuota(path, cores, version=1)
        controllers = CGROUP_ROOT / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():
            subtree = CGROUP_ROOT / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
            path = CGROUP_ROOT / name
            path.mkdir(exist_ok=True)
            (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            return CpuQuota(path, cores, version=2)
    except OSError as error:
        raise QuotaUnavailable(
            f"cannot make a cgroup with a CPU quota under {CGROUP_ROOT} ({error}): "
            "the pools need one each (run as root)"
        ) from error
    raise QuotaUnavailable(
        f"no cgroup CPU controller under {CGROUP_ROOT} (neither v1 cpu nor v2 cpu.max)"
    )
