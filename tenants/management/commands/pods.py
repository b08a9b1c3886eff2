"""``manage.py pods ...``: the pods of a platform past one machine (docs/scaling.md)."""

import json
import signal
import threading
import urllib.request
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.errors import TenantError
from tenants.pods import directory, moves, placement, plans, registration
from tenants.pods.routing import RouterRunner


def _web_health(web: str) -> str:
    """Whether the pod's pool answers its liveness check (``/healthz``)."""
    try:
        with urllib.request.urlopen(f"http://{web}/healthz", timeout=2) as response:
            return "up" if response.status == 200 else f"http {response.status}"
    except OSError as exc:  # refused, timed out, an HTTP error: not serving
        return f"down ({type(exc).__name__})"


class Command(BaseCommand):
    help = "List, add and drain pods; run the router in front of them."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = actions.add_parser(
            "list", help="Each pod with its tenants, load and health."
        )
        listing.add_argument("--json", action="store_true", help="Print JSON.")

        add = actions.add_parser(
            "add", help="Register a pod, adopting the tenants it already holds."
        )
        add.add_argument("name", help="The pod's name (e.g. pod2).")
        add.add_argument(
            "--database-url", required=True, help="The pod's PostgreSQL URL."
        )
        add.add_argument("--redis-url", required=True, help="The pod's Redis URL.")
        add.add_argument(
            "--web", required=True, help="host:port of the pod's gunicorn pool."
        )
        add.add_argument(
            "--media-root",
            default="",
            help="Where the pod keeps tenant media: its MEDIA_ROOT on its own disk, "
            "or s3://BUCKET/PREFIX (CMS_MEDIA_S3_*). A move copies a tenant's files "
            "between two different locations and nothing when both pods share one; "
            "omit when every pod shares the same storage.",
        )

        for name, help_text in (
            ("drain", "Place no new tenants on the pod (its tenants stay)."),
            ("activate", "Place new tenants on the pod again."),
        ):
            actions.add_parser(name, help=help_text).add_argument(
                "name", help="The pod's name."
            )
        actions.add_parser(
            "sync-plans", help="Write this pod's plans to every other pod."
        )
        actions.add_parser(
            "cleanup",
            help="Drop the old copies of moved tenants whose grace period is over.",
        )
        run_router = actions.add_parser(
            "router", help="Run HAProxy in front of the pods, following the directory."
        )
        run_router.add_argument(
            "--bind", default="127.0.0.1:8000", help="Address to serve on."
        )
        run_router.add_argument(
            "--state-dir", default="var/router", help="Config, map, socket, logs."
        )

    def handle(self, *args, **options) -> None:
        if not directory.enabled():
            raise CommandError(
                "This platform has one pod: set CMS_DIRECTORY_URL (and CMS_POD) to "
                "run several (docs/scaling.md)."
            )
        handler = getattr(self, "handle_" + options["action"].replace("-", "_"))
        try:
            handler(options)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc

    def handle_list(self, options: dict) -> None:
        rows = [
            {
                "name": load.pod.name,
                "web": load.pod.web,
                "state": load.pod.state,
                "tenants": load.tenants,
                "requests_7d": load.requests_7d,
                "database": "up" if load.healthy else "down",
                "web_health": _web_health(load.pod.web),
            }
            for load in placement.pod_loads()
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        line = "{:<12} {:<22} {:<9} {:>8} {:>12}  {:<9} {}"
        header = ("POD", "WEB", "STATE", "TENANTS", "REQUESTS_7D", "DATABASE", "WEB")
        self.stdout.write(line.format(*header))
        for row in rows:
            requests = "-" if row["requests_7d"] is None else row["requests_7d"]
            self.stdout.write(
                line.format(
                    row["name"],
                    row["web"],
                    row["state"],
                    row["tenants"],
                    requests,
                    row["database"],
                    row["web_health"],
                )
            )

    def handle_add(self, options: dict) -> None:
        pod, adopted = registration.pod_register(
            name=options["name"],
            database_url=options["database_url"],
            redis_url=options["redis_url"],
            web=options["web"],
            media_root=options["media_root"],
        )
        self.stdout.write(
            f"Registered pod {pod.name} (pool {pod.web}); adopted {adopted} tenant(s)."
        )

    def handle_drain(self, options: dict) -> None:
        directory.pod_set_state(options["name"], "draining")
        self.stdout.write(f"Pod {options['name']} takes no new tenants.")

    def handle_activate(self, options: dict) -> None:
        directory.pod_set_state(options["name"], "active")
        self.stdout.write(f"Pod {options['name']} takes new tenants again.")

    def handle_sync_plans(self, options: dict) -> None:
        failed = plans.sync_plans()
        if failed:
            raise CommandError(f"Plans not written to pod(s): {', '.join(failed)}.")
        self.stdout.write("Plans written to every pod.")

    def handle_cleanup(self, options: dict) -> None:
        dropped = moves.moved_schemas_drop()
        for name in dropped:
            self.stdout.write(f"Dropped {name}.")
        self.stdout.write(f"{len(dropped)} old copies dropped.")

    def handle_router(self, options: dict) -> None:
        runner = RouterRunner(
            bind=options["bind"], state_dir=Path(options["state_dir"])
        )
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        runner.start()
        self.stdout.write(f"Router on {options['bind']}, following the directory.")
        self.stdout.flush()
        try:
            runner.run(stop)
        finally:
            runner.stop()
