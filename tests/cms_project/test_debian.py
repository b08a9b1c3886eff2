"""Debian tools (cms_project.debian): found where Debian puts them, installed with
apt-get when missing and allowed, a message saying how otherwise, and a package's own
after-install step run only after an install."""

import subprocess

import pytest

from cms_project import debian


@pytest.fixture
def as_root_with_apt(monkeypatch):
    """This process is root and apt-get is there; every command it runs succeeds
    and is recorded instead of run."""
    ran = []
    monkeypatch.setattr(debian.os, "geteuid", lambda: 0)
    monkeypatch.setattr(debian.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(
        debian.subprocess,
        "run",
        lambda command, **kwargs: (
            ran.append(command) or subprocess.CompletedProcess(command, 0, "", "")
        ),
    )
    return ran


def test_a_missing_tool_is_installed_and_its_after_install_step_runs(
    monkeypatch, as_root_with_apt
):
    installed = []
    # there once apt-get has run
    monkeypatch.setattr(
        debian, "find_tool", lambda name: "/usr/sbin/tool" if as_root_with_apt else None
    )

    path = debian.ensure_tool(
        "tool", "tool-pkg", after_install=lambda: installed.append(1)
    )

    assert path == "/usr/sbin/tool"
    assert as_root_with_apt[0][-1] == "tool-pkg"
    assert installed == [1]


def test_a_tool_already_there_is_not_installed_and_runs_no_after_install_step(
    monkeypatch, as_root_with_apt
):
    installed = []
    monkeypatch.setattr(debian, "find_tool", lambda name: "/usr/sbin/tool")

    path = debian.ensure_tool("tool", after_install=lambda: installed.append(1))

    assert path == "/usr/sbin/tool"
    assert as_root_with_apt == []
    assert installed == []


def test_without_root_the_message_says_which_package_to_install(monkeypatch):
    monkeypatch.setattr(debian, "find_tool", lambda name: None)
    monkeypatch.setattr(debian.os, "geteuid", lambda: 1000)

    with pytest.raises(debian.ToolMissing, match=r"apt-get install tool-pkg"):
        debian.ensure_tool("tool", "tool-pkg")
