"""Known vulnerabilities in the locked dependencies, checked offline.

``make audit`` runs pip-audit against PyPI's live vulnerability service when that
answers (``--probe-live``); where it cannot be reached, this module checks the pinned
versions of ``requirements.lock`` against an offline snapshot of the PyPA advisory
database (OSV records, YAML or JSON, under ``<snapshot>/vulns/<package>/``). A snapshot
cannot know advisories published after its date, so the report says that it used one
and of which date, and how many packages and advisories it checked. It never passes
having checked nothing: no pinned package, or no snapshot, is a failure.

Usage::

    python -m cms_project.advisories requirements.lock [--snapshot DIR]
    python -m cms_project.advisories --probe-live requirements.lock

The snapshot is ``--snapshot``, else ``CMS_ADVISORY_DB``, else ``../shared/advisory-db``
beside the repository (``default_snapshot``). Exit codes: 0 no finding, 1 a finding,
2 nothing checked.
"""

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_snapshot() -> Path:
    """``CMS_ADVISORY_DB``, else ``shared/advisory-db`` beside the repository (or
    beside a folder above it, as for a git worktree under the main checkout's
    parent)."""
    if os.environ.get("CMS_ADVISORY_DB"):
        return Path(os.environ["CMS_ADVISORY_DB"])
    candidates = [folder / "shared" / "advisory-db" for folder in REPO_ROOT.parents]
    return next((path for path in candidates if path.is_dir()), candidates[0])


# What pip-audit's default service asks for each package (pip_audit._service.pypi).
LIVE_SERVICE_URL = "https://pypi.org/pypi/{name}/{version}/json"
LIVE_PROBE_TIMEOUT_SECONDS = 3.0

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_NOTHING_CHECKED = 2

_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(?P<version>[^\s;\\]+)"
)
_SNAPSHOT_DATE = re.compile(r"\bof\s+(\d{4}-\d{2}-\d{2})\b")


class NothingChecked(Exception):
    """The check could not look at anything: an empty lock or a missing snapshot."""


@dataclass(frozen=True)
class Pin:
    name: str  # canonical (PEP 503)
    version: str


@dataclass(frozen=True)
class Advisory:
    """One OSV record, reduced to what matching needs."""

    id: str
    aliases: tuple[str, ...]
    package: str  # canonical
    versions: frozenset[str]
    ranges: tuple[tuple[tuple[str, str], ...], ...]  # each: ((event, version), ...)
    summary: str

    def affects(self, version: str) -> bool:
        try:
            parsed = Version(version)
        except InvalidVersion:
            return version in self.versions
        if any(_same_version(parsed, listed) for listed in self.versions):
            return True
        return any(_in_range(parsed, events) for events in self.ranges)

    def fixed_in(self) -> list[str]:
        return sorted(
            {
                version
                for events in self.ranges
                for kind, version in events
                if kind == "fixed"
            },
            key=_sort_key,
        )


@dataclass(frozen=True)
class Snapshot:
    path: Path
    date: str
    advisories: tuple[Advisory, ...]
    withdrawn: int


@dataclass(frozen=True)
class Finding:
    pin: Pin
    advisory: Advisory


def _sort_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")


def _same_version(parsed: Version, listed: str) -> bool:
    try:
        return parsed == Version(listed)
    except InvalidVersion:
        return str(parsed) == listed


def _in_range(version: Version, events: tuple[tuple[str, str], ...]) -> bool:
    """OSV's evaluation of an ECOSYSTEM range: walk its events in version order."""
    ordered = sorted(
        events,
        key=lambda event: Version("0") if event[1] == "0" else _sort_key(event[1]),
    )
    affected = False
    for kind, boundary in ordered:
        bound = Version("0") if boundary == "0" else _sort_key(boundary)
        if kind == "introduced" and version >= bound:
            affected = True
        elif kind == "fixed" and version >= bound:
            affected = False
        elif kind == "last_affected" and version > bound:
            affected = False
        elif kind == "limit" and version >= bound:
            affected = False
    return affected


# --- reading -------------------------------------------------------------------------


def read_lock(path: Path) -> list[Pin]:
    """The ``name==version`` pins of a requirements file (comments, hashes, markers
    and continuation lines ignored)."""
    pins = []
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins.append(Pin(canonicalize_name(match["name"]), match["version"]))
    return pins


def _advisory_from_record(record: dict) -> list[Advisory]:
    advisories = []
    for affected in record.get("affected") or []:
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI" or not package.get("name"):
            continue
        ranges = tuple(
            tuple(
                (kind, str(value))
                for event in range_.get("events") or []
                for kind, value in event.items()
            )
            for range_ in affected.get("ranges") or []
            if range_.get("type") == "ECOSYSTEM"
        )
        advisories.append(
            Advisory(
                id=str(record["id"]),
                aliases=tuple(str(alias) for alias in record.get("aliases") or []),
                package=canonicalize_name(package["name"]),
                versions=frozenset(str(v) for v in affected.get("versions") or []),
                ranges=ranges,
                summary=str(record.get("summary") or record.get("details") or ""),
            )
        )
    return advisories


def read_snapshot(path: Path) -> Snapshot:
    """Every advisory of the snapshot; withdrawn records are counted, not used."""
    records_dir = path / "vulns"
    files = sorted(
        [*records_dir.glob("*/*.yaml"), *records_dir.glob("*/*.json")]
        if records_dir.is_dir()
        else []
    )
    if not files:
        raise NothingChecked(
            f"no advisory snapshot at {path} (no {records_dir}/*/*.yaml)"
        )
    advisories: list[Advisory] = []
    withdrawn = 0
    newest_record = ""
    for file in files:
        text = file.read_text()
        record = (
            json.loads(text)
            if file.suffix == ".json"
            else yaml.load(text, Loader=_LOADER)
        )
        if record.get("withdrawn"):
            withdrawn += 1
            continue
        newest_record = max(newest_record, str(record.get("modified", ""))[:10])
        advisories.extend(_advisory_from_record(record))
    if not advisories:
        raise NothingChecked(f"the advisory snapshot at {path} holds no usable record")
    return Snapshot(
        path=path,
        date=_snapshot_date(path)
        or f"unknown (newest record modified {newest_record})",
        advisories=tuple(advisories),
        withdrawn=withdrawn,
    )


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _snapshot_date(path: Path) -> str | None:
    for name in ("README.md", "README"):
        readme = path / name
        if readme.is_file():
            match = _SNAPSHOT_DATE.search(readme.read_text())
            if match:
                return match.group(1)
    return None


# --- checking ------------------------------------------------------------------------


def check_pins(*, pins: list[Pin], snapshot: Snapshot) -> list[Finding]:
    """Each pinned version that an advisory of the snapshot affects."""
    by_package: dict[str, list[Advisory]] = {}
    for advisory in snapshot.advisories:
        by_package.setdefault(advisory.package, []).append(advisory)
    return [
        Finding(pin, advisory)
        for pin in pins
        for advisory in by_package.get(pin.name, [])
        if advisory.affects(pin.version)
    ]


def audit_lock(*, lock: Path, snapshot_path: Path, out=sys.stdout) -> int:
    """Print the offline report for ``lock``; return the exit code."""
    try:
        if not lock.is_file():
            raise NothingChecked(f"no lock file at {lock}")
        pins = read_lock(lock)
        if not pins:
            raise NothingChecked(f"no pinned package (name==version) in {lock}")
        snapshot = read_snapshot(snapshot_path)
    except NothingChecked as error:
        out.write(f"audit FAILED, nothing was checked: {error}\n")
        return EXIT_NOTHING_CHECKED
    findings = check_pins(pins=pins, snapshot=snapshot)
    pinned = {pin.name for pin in pins}
    covered = {a.package for a in snapshot.advisories if a.package in pinned}
    out.write(
        f"Offline audit against a SNAPSHOT of the PyPA advisory database dated "
        f"{snapshot.date} ({snapshot.path}), not the live service: advisories "
        f"published after that date are not seen.\n"
        f"Checked {len(pins)} pinned packages of {lock.name} against "
        f"{len({a.id for a in snapshot.advisories})} advisories (about "
        f"{len(covered)} of these packages; withdrawn records ignored: "
        f"{snapshot.withdrawn}).\n"
    )
    if not findings:
        out.write(
            f"No known vulnerability in the pinned versions (as of {snapshot.date}).\n"
        )
        return EXIT_CLEAN
    out.write(f"{len(findings)} known vulnerabilities:\n")
    for finding in findings:
        advisory = finding.advisory
        aliases = f" ({', '.join(advisory.aliases)})" if advisory.aliases else ""
        fixed = ", ".join(advisory.fixed_in()) or "no fixed version"
        summary = " ".join(advisory.summary.split())[:160]
        out.write(
            f"  {finding.pin.name}=={finding.pin.version}: {advisory.id}{aliases}; "
            f"fixed in {fixed}. {summary}\n"
        )
    return EXIT_FINDINGS


# --- the live service ----------------------------------------------------------------


def live_service_answers(
    *, lock: Path, timeout: float = LIVE_PROBE_TIMEOUT_SECONDS
) -> tuple[bool, str]:
    """Whether pip-audit's service answers for the lock's first pin, and why not."""
    pins = read_lock(lock) if lock.is_file() else []
    if not pins:
        return False, f"no pinned package in {lock} to ask about"
    url = LIVE_SERVICE_URL.format(name=pins[0].name, version=pins[0].version)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except (OSError, ValueError) as error:  # URLError, timeouts, HTTP 404, bad JSON
        return False, f"{url}: {error}"
    if "vulnerabilities" not in body:
        return False, f"{url} answered without vulnerability data"
    return True, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cms_project.advisories",
        description="Check a requirements lock against the offline advisory snapshot.",
    )
    parser.add_argument("lock", type=Path, help="the requirements file of pins")
    parser.add_argument(
        "--snapshot",
        type=Path,
        default=None,
        help="the advisory database folder (default: CMS_ADVISORY_DB, else "
        "../shared/advisory-db beside the repository)",
    )
    parser.add_argument(
        "--probe-live",
        action="store_true",
        help="only say whether pip-audit's live service answers (exit 0) or not (1)",
    )
    args = parser.parse_args(argv)
    if args.probe_live:
        answers, detail = live_service_answers(lock=args.lock)
        if answers:
            sys.stdout.write(
                f"The live vulnerability service answers ({detail}): pip-audit checks "
                f"the {len(read_lock(args.lock))} pinned packages of {args.lock}.\n"
            )
            return 0
        sys.stdout.write(
            f"The live vulnerability service cannot be used here: {detail}\n"
        )
        return 1
    return audit_lock(lock=args.lock, snapshot_path=args.snapshot or default_snapshot())


if __name__ == "__main__":
    sys.exit(main())
