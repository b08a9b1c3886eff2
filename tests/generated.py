"""Hypothesis profiles for the generated tests (isolation, fuzzing) and their sizes.

- ``cms``, the default on a developer's machine: derandomized, so a local run sees the
  same examples every time and a failure reproduces by running the test again.
- ``ci``, loaded when ``CI=true``: random examples, ``CI_SCALE`` times as many, so
  every CI run explores inputs no run before it tried; a failure prints the
  ``@reproduce_failure`` blob that replays it (``print_blob``). No example database:
  a CI clone is thrown away.

``HYPOTHESIS_PROFILE=ci make test ...`` runs the CI profile anywhere. Both profiles have
no per-example deadline (requests hit a real database) and let a function-scoped
fixture (the ``db`` transaction) serve every example of a test, which is what the tests
expect.

A test states its size on the local profile through ``examples(n)``, which scales it
with the loaded profile, so a test's own ``max_examples`` never pins CI to the local
count.
"""

import os

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tests.ci_plugin import running_in_ci

LOCAL_EXAMPLES = 100
# The nine generated tests, timed on this 2-core machine while shared (load 11-16):
# 67 s under `cms`; under `ci` 182 s at 3x (327 s on a busier run) and 298 s at 4x.
# The isolation test is over half of it (~3 s an example). 3x adds about two minutes
# to each of CI's two suite runs.
CI_SCALE = 3

hypothesis_settings.register_profile(
    "cms",
    max_examples=LOCAL_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
hypothesis_settings.register_profile(
    "ci",
    parent=hypothesis_settings.get_profile("cms"),
    max_examples=LOCAL_EXAMPLES * CI_SCALE,
    derandomize=False,
    print_blob=True,
    database=None,
)


def load_profile() -> str:
    """Load ``HYPOTHESIS_PROFILE`` if set, else ``ci`` under CI, else ``cms``."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if running_in_ci() else "cms")
    hypothesis_settings.load_profile(name)
    return name


def examples(local: int) -> int:
    """``local`` examples under the ``cms`` profile, scaled with the loaded one."""
    scale = hypothesis_settings.default.max_examples / LOCAL_EXAMPLES
    return max(1, round(local * scale))
