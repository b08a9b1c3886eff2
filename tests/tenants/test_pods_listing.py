"""``tenants list`` with pods, when a pod cannot answer: the others' tenants are
listed, the silent pod is named, and the exit is an error (the two-pod listing
itself: tests/tenants/test_pods.py)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tenants.pods import directory, listing, remote
from tenants.pods.directory import Pod

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_pods_one_silent(monkeypatch):
    pods = [Pod("pod1", "", "", "", "active"), Pod("pod2", "", "", "", "active")]
    monkeypatch.setattr(directory, "enabled", lambda: True)
    monkeypatch.setattr(directory, "local_pod", lambda: "pod1")
    monkeypatch.setattr(directory, "pods_list", lambda: pods)

    def silent(pod_name, argv, *, stdout, stderr):
        stderr.write("Traceback...\npsycopg.OperationalError: connection refused\n")
        return 1

    monkeypatch.setattr(remote, "run_on_pod", silent)


def test_a_silent_pod_is_named_and_the_others_are_listed(two_pods_one_silent):
    found = listing.list_tenants()

    assert {row["slug"]: row["pod"] for row in found.rows} == {
        "acme": "pod1",
        "globex": "pod1",
    }
    assert found.unreachable == [
        "pod pod2 did not answer: psycopg.OperationalError: connection refused"
    ]
    out = StringIO()
    with pytest.raises(CommandError, match="Not listed: pod pod2 did not answer"):
        call_command("tenants", "list", stdout=out)
    assert "POD" in out.getvalue() and "acme" in out.getvalue()
