"""Job kinds used only by the tests (loaded through CMS_BACKGROUND_JOB_MODULES in the
test settings, by the test process and its workers alike)."""

import time

from django.db import OperationalError

from content.jobs import BackgroundJob, JobError, job_kind
from content.publish_jobs import run_publish


@job_kind("test.noop", counts_against_plan=False)
def run_noop(job: BackgroundJob) -> dict:
    return {"ok": True}


@job_kind("test.flaky", counts_against_plan=False)
def run_flaky(job: BackgroundJob) -> dict:
    """Fails with a transient database error until attempt ``succeed_on``."""
    if job.attempts < job.args["succeed_on"]:
        raise OperationalError(f"simulated connection loss on attempt {job.attempts}")
    return {"attempts": job.attempts}


@job_kind("test.broken", counts_against_plan=False)
def run_broken(job: BackgroundJob) -> dict:
    raise JobError("the page was deleted before the job ran")


@job_kind("test.slow_publish", counts_against_plan=False)
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
