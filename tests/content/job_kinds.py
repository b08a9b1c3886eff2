"""Job kinds used only by the tests (imported through CMS_BACKGROUND_JOB_MODULES by
``ContentConfig.ready``, in the test process and its workers alike)."""

import time

from django.db import OperationalError

from content.jobs import BackgroundJob, JobError
from content.publish_jobs import run_publish
from tenants.jobs.kinds import register_job_kind


def run_noop(job: BackgroundJob) -> dict:
    return {"ok": True}


def run_flaky(job: BackgroundJob) -> dict:
    """Fails with a transient database error until attempt ``succeed_on``."""
    if job.attempts < job.args["succeed_on"]:
        raise OperationalError(f"simulated connection loss on attempt {job.attempts}")
    return {"attempts": job.attempts}


def run_broken(job: BackgroundJob) -> dict:
    raise JobError("the page was deleted before the job ran")


def run_slow_publish(job: BackgroundJob) -> dict:
    """The real publish, then (first attempt only) a long pause before the job's
    transaction commits: a worker killed during the pause dies mid-publish."""
    result = run_publish(job)
    if job.attempts == 1:
        marker = job.args.get("marker")
        if marker:
            open(marker, "w").close()
        time.sleep(job.args.get("sleep", 30))
    return result


def run_sleep(job: BackgroundJob) -> dict:
    """Holds an in-flight slot for ``seconds`` (concurrency tests)."""
    time.sleep(job.args.get("seconds", 1))
    return {"slept": job.args.get("seconds", 1)}


for _name, _run in (
    ("test.noop", run_noop),
    ("test.flaky", run_flaky),
    ("test.broken", run_broken),
    ("test.slow_publish", run_slow_publish),
    ("test.sleep", run_sleep),
):
    register_job_kind(_name, run=_run, counts_against_plan=False)
