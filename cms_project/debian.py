"""Tools the platform's edges and benchmarks run from Debian's packages (HAProxy,
pgbouncer, wrk): found on the PATH or in /usr/sbin, installed with apt-get when
missing and this process may (root), and otherwise a clear message saying how to
install them - never a silent fallback to something else."""

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


class ToolMissing(RuntimeError):
    """A tool is not installed and could not be installed; the message says how."""


def find_tool(binary: str) -> str | None:
    """The tool's path; Debian puts daemons in /usr/sbin, which a non-root PATH may
    lack."""
    sbin = Path("/usr/sbin") / binary
    return shutil.which(binary) or (str(sbin) if sbin.exists() else None)


def ensure_tool(
    binary: str,
    package: str | None = None,
    *,
    after_install: Callable[[], None] | None = None,
) -> str:
    """The path of ``binary``, installing Debian's ``package`` (default: the binary's
    name) when it is missing; ``after_install`` runs only after such an install (a
    package that starts a service of its own). Raises ``ToolMissing``."""
    package = package or binary
    if found := find_tool(binary):
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolMissing(
            f"{binary} is not installed: install Debian's package as root "
            f"(apt-get install {package})."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q"]

    def install() -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, package], env=env, capture_output=True, text=True, check=False
        )

    result = install()
    if result.returncode != 0:
        # a stale package index names versions the mirror no longer has
        subprocess.run(
            ["apt-get", "update", "-q"], env=env, capture_output=True, check=False
        )
        result = install()
    if result.returncode != 0:
        raise ToolMissing(
            f"{binary} is not installed and `apt-get install {package}` failed: "
            f"{result.stderr.strip()[-300:]}"
        )
    if found := find_tool(binary):
        if after_install is not None:
            after_install()
        return found
    raise ToolMissing(f"apt-get installed {package} but no {binary} was found.")
