"""A creation that fails after its saves claimed names in the directory gives the
claims up (they were made on the directory's own connection and outlive the
rollback), so another pod may take the slug; a name this pod holds stays claimed.
The claims themselves, on two real pods: tests/tenants/test_pods.py."""

import pytest

from tenants.errors import ProvisioningFailed
from tenants.pods import claims, directory
from tenants.provisioning import creation

pytestmark = pytest.mark.django_db


@pytest.fixture
def released(monkeypatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(directory, "enabled", lambda: True)
    monkeypatch.setattr(directory, "local_pod", lambda: "pod1")
    monkeypatch.setattr(directory, "check_new_tenant", lambda *args: None)
    monkeypatch.setattr(directory, "claim_tenant", lambda slug, pod: None)
    monkeypatch.setattr(directory, "claim_hostnames", lambda slug, hosts: None)
    monkeypatch.setattr(
        directory, "release_tenant", lambda slug, pod: calls.append((slug, pod))
    )
    return calls


def test_a_creation_failing_after_its_claims_releases_them(released, monkeypatch):
    def broken_clone(schema: str) -> None:
        raise RuntimeError("the template could not be cloned")

    monkeypatch.setattr(creation, "clone_template", broken_clone)

    with pytest.raises(ProvisioningFailed, match="could not be cloned"):
        creation.tenant_create(
            slug="halfway", name="Halfway", domains=["halfway.localhost"], plan="pro"
        )

    assert released == [("halfway", "pod1")]


def test_a_name_this_pod_holds_stays_claimed(released):
    with pytest.raises(RuntimeError), claims.released_on_failure("acme"):
        raise RuntimeError("a later step failed")

    assert released == []
