"""WSGI entry point for gunicorn: one shared worker pool serves every tenant."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")

application = get_wsgi_application()
