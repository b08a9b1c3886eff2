"""Development: debug pages, embedded services from ``cms_project.devstack``."""

from cms_project.settings.base import *  # noqa: F403
from cms_project.settings.env import env_bool

DEBUG = env_bool("DEBUG", True)
# Static files straight from the apps: no collectstatic needed while developing.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
