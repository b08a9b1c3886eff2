#!/usr/bin/env python
"""Django's command-line utility; starts the embedded services first when needed."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cms_project.settings.dev")
    from cms_project.devstack import ensure_service_urls

    ensure_service_urls()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
