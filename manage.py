#!/usr/bin/env python
"""Django's command-line utility; starts the embedded services first when needed."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    from django.core.exceptions import ImproperlyConfigured

    from cms_project.devstack import ensure_service_urls

    try:
        ensure_service_urls()
        # Load the settings now, so that a missing or invalid variable is one line
        # naming it rather than a traceback from deep inside the command.
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018
    except ImproperlyConfigured as error:
        sys.stderr.write(
            f"ImproperlyConfigured ({os.environ['DJANGO_SETTINGS_MODULE']}): {error}\n"
        )
        sys.exit(1)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
