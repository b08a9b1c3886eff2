"""The background verification as a real Celery worker runs it, on committed data."""

import pytest

from tenants.domains import ownership
from tenants.models import Domain, Tenant

QUEUE = "tests-domain-checks"


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    from django.db import connection

    with django_db_blocker.unblock():
        yield
        Domain.objects.filter(domain__endswith=".worker.example.test").delete()
        connection.set_schema_to_public()


def test_a_worker_retries_until_the_record_appears_then_gives_up_on_others(
    dns_server, committed, tmp_path
):
    import subprocess
    import sys

    from tests.integration import REPO_ROOT, process_env, stop_process, wait_for

    acme = Tenant.objects.get(schema_name="acme")
    found = ownership.domain_add(tenant=acme, host="found.worker.example.test")
    never = ownership.domain_add(tenant=acme, host="never.worker.example.test")
    log = tmp_path / "worker.log"
    # A worker of its own on a queue of its own (the session's worker would take the
    # tasks with the default pauses): it sees the test DNS server (CMS_DNS_RESOLVER,
    # set by the dns_server fixture) and retries fast. Retries keep the queue.
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "cms_project", "worker",
            "--pool", "solo", "-Q", QUEUE, "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
        ],
        cwd=REPO_ROOT,
        env=process_env(
            CMS_DOMAIN_VERIFY_RETRY_SECONDS="1", CMS_DOMAIN_VERIFY_ATTEMPTS="3"
        ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        from tenants.tasks import verify_domain_task

        verify_domain_task.apply_async(args=[found.pk], queue=QUEUE)
        verify_domain_task.apply_async(args=[never.pk], queue=QUEUE)
        dns_server.publish_txt(
            "_cms-challenge.found.worker.example.test", found.verification_token
        )
        wait_for(
            lambda: Domain.objects.filter(pk=found.pk, status="verified").exists(),
            timeout=60,
            what=f"the worker to verify the domain (log: {log})",
        )
        failed = wait_for(
            lambda: Domain.objects.filter(pk=never.pk, status="failed").first(),
            timeout=60,
            what=f"the worker to give up (log: {log})",
        )
        assert "No TXT record" in failed.last_error
    finally:
        stop_process(worker)
        dns_server.clear()
