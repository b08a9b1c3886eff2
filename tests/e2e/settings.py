"""Settings of the gunicorn pool the browser tests drive: the test settings, with the
admin's static files (CSS, Draftail, choosers) served straight from the apps as in
development, so no ``collectstatic`` is needed before a run."""

from cms_project.settings.test import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
