"""``manage.py tenants ...``: the operator's interface to tenants (names relied on)."""

import csv
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.audit import trail
from tenants.audit.trail import Actor
from tenants.backups import clone, data_export, restore, snapshots
from tenants.domains import ownership
from tenants.domains.ownership import domain_as_dict, ownership_instructions
from tenants.errors import DomainVerificationFailed, TenantError
from tenants.management.commands.migrate import fleet_summary
from tenants.metering import counters, reports
from tenants.models import Tenant
from tenants.pods import directory, listing, moves, placement, remote
from tenants.provisioning import bulk, lifecycle, portability
from tenants.provisioning import creation as provisioning
from tenants.provisioning.fleet import ProgressBar, migrate_fleet
from tenants.registry.selectors import tenant_as_dict, tenant_get
from tenants.tasks import schedule_domain_verification

SLUG_HELP = "The tenant's slug (its schema name)."
POD_HELP = "The pod to place it on (default: the least loaded; with pods only)."
# Actions that make a new tenant: with pods, they run on the pod it is placed on.
PLACING_ACTIONS = ("create", "import")
# Actions that work on several pods from wherever they are run.
ANY_POD_ACTIONS = ("move",)


class Command(BaseCommand):
    help = "Create, list, change and delete tenants."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        create = actions.add_parser(
            "create", help="Provision a new tenant, or many with --from-csv."
        )
        create.add_argument(
            "slug", nargs="?",
            help="The tenant's slug, also its schema name (omit with --from-csv).",
        )  # fmt: skip
        create.add_argument(
            "--name", help="Display name (required without --from-csv)."
        )
        create.add_argument(
            "--domain", action="append", default=[], dest="domains",
            help="Host name; repeat for more. The first is primary.",
        )  # fmt: skip
        create.add_argument(
            "--plan", help="Its plan (tariff; required without --from-csv)."
        )
        create.add_argument(
            "--from-csv", dest="csv", metavar="FILE",
            help="Columns slug,name,domain,plan,admin_email; bad rows are reported "
            "and skipped.",
        )  # fmt: skip
        create.add_argument(
            "--admin-email",
            help="E-mail of its first admin user (default: admin@ the first domain).",
        )
        create.add_argument(
            "--admin-password",
            help="That admin's password (default: a random one, printed once).",
        )
        create.add_argument("--pod", help=POD_HELP)

        move = actions.add_parser(
            "move",
            help="Move a tenant to another pod while it serves (a short write pause).",
        )
        move.add_argument("slug", help=SLUG_HELP)
        what = move.add_mutually_exclusive_group(required=True)
        what.add_argument("--to", dest="target", help="The pod to move it to.")
        what.add_argument(
            "--resume",
            action="store_true",
            help="Start an interrupted move again, or finish its clean-up.",
        )
        what.add_argument(
            "--abort", action="store_true", help="Undo an interrupted move."
        )
        move.add_argument(
            "--sync-timeout", type=float, default=1800,
            help="Seconds the initial copy may take before the move is rolled back "
            "(default 1800).",
        )  # fmt: skip

        list_parser = actions.add_parser(
            "list", help="List tenants (with pods: every pod's, with its pod)."
        )
        list_parser.add_argument("--json", action="store_true", help="Print JSON.")
        list_parser.add_argument("--pod", help="Only this pod's tenants.")

        show = actions.add_parser("show", help="Show one tenant.")
        show.add_argument("slug", help=SLUG_HELP)
        show.add_argument("--json", action="store_true", help="Print JSON.")

        set_plan = actions.add_parser("set-plan", help="Move a tenant to a plan.")
        set_plan.add_argument("slug", help=SLUG_HELP)
        set_plan.add_argument("plan", help="The new plan's name.")

        add_domain = actions.add_parser(
            "add-domain",
            help="Add a host name to a tenant: a subdomain of the platform serves at "
            "once, a custom domain once its ownership is verified.",
        )
        add_domain.add_argument("slug", help=SLUG_HELP)
        add_domain.add_argument(
            "host", help="The host name to add, e.g. www.shop.example.com."
        )
        add_domain.add_argument(
            "--method", choices=["dns", "http"], default="dns",
            help="How ownership is proven: a TXT record _cms-challenge.DOMAIN (dns, "
            "the default) or a token at /.well-known/cms-challenge/TOKEN (http).",
        )  # fmt: skip
        add_domain.add_argument(
            "--verify", action="store_true",
            help="Check ownership now; if not proven yet, exit non-zero (the domain "
            "stays pending and is retried in the background).",
        )  # fmt: skip

        for name, help_text in (
            ("remove-domain", "Remove a host name from a tenant (frees the name)."),
            ("verify-domain", "Check a pending domain's ownership now."),
            ("primary-domain", "Make a verified domain the tenant's primary: the "
             "others redirect to it."),
        ):  # fmt: skip
            sub = actions.add_parser(name, help=help_text)
            sub.add_argument("slug", help=SLUG_HELP)
            sub.add_argument("host", help="The host name, e.g. www.shop.example.com.")

        domains = actions.add_parser(
            "domains", help="A tenant's domains with their status and the record "
            "that proves ownership.",
        )  # fmt: skip
        domains.add_argument("slug", help=SLUG_HELP)
        domains.add_argument("--json", action="store_true", help="JSON on stdout.")

        hsts = actions.add_parser(
            "hsts", help="Turn HSTS on or off for a tenant (needs the plan's hsts)."
        )
        hsts.add_argument("slug", help=SLUG_HELP)
        hsts.add_argument("state", choices=["on", "off"], help="on or off")

        for name, help_text in (
            ("suspend", "Serve a 503 page instead of the tenant's site."),
            ("resume", "Serve a suspended tenant again."),
        ):
            actions.add_parser(name, help=help_text).add_argument(
                "slug", help=SLUG_HELP
            )

        delete = actions.add_parser("delete", help="Drop a tenant with its data.")
        delete.add_argument("slug", help=SLUG_HELP)
        delete.add_argument("--yes", action="store_true", help="Confirm the deletion.")
        delete.add_argument(
            "--backup", metavar="FILE.tar.gz", help="Export the tenant first."
        )

        export = actions.add_parser("export", help="Write a tenant to an archive.")
        export.add_argument("slug", help=SLUG_HELP)
        export.add_argument(
            "-o", "--output", required=True, metavar="FILE",
            help="Where to write it (.tar.gz; .zip with --portable).",
        )  # fmt: skip
        export.add_argument(
            "--portable", action="store_true",
            help="The tenant's own portable format instead of a restorable archive: "
            "pages with revisions as JSON, images, documents, users without password "
            "hashes (a zip).",
        )  # fmt: skip

        backup = actions.add_parser(
            "backup", help="Take a backup of a tenant now, into the backup storage."
        )
        backup.add_argument("slug", help="The tenant's slug.")

        backups = actions.add_parser("backups", help="List a tenant's backups.")
        backups.add_argument("slug", help="The tenant's slug.")
        backups.add_argument("--json", action="store_true", help="Print JSON.")

        restore_in_place = actions.add_parser(
            "restore",
            help="Restore a tenant in place from one of its backups, without "
            "downtime; or --undo the last restore.",
        )
        restore_in_place.add_argument("slug", help="The tenant's slug.")
        which = restore_in_place.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--backup", metavar="ID", help="The backup to restore (see `backups`)."
        )
        which.add_argument(
            "--undo", action="store_true",
            help="Swap back the state the last restore replaced (within the grace "
            "period, CMS_RESTORE_GRACE_HOURS).",
        )  # fmt: skip

        clone = actions.add_parser(
            "clone", help="Copy a tenant (content, users, media) as a staging tenant."
        )
        clone.add_argument("slug", help="The tenant to copy.")
        clone.add_argument("--to", required=True, metavar="NEW", help="The new slug.")
        clone.add_argument(
            "--domain", action="append", required=True, dest="domains",
            help="Host name of the copy; repeat for more. The first is primary.",
        )  # fmt: skip
        clone.add_argument("--plan", help="Default: the original's plan.")

        audit = actions.add_parser(
            "audit", help="The audit trail: operator and security-relevant actions."
        )
        audit.add_argument(
            "slug", nargs="?", help="Only this tenant's entries (default: all)."
        )
        audit.add_argument(
            "--since", metavar="WHEN",
            help="From a date (2026-12-01), a date-time or an age (30m, 12h, 7d).",
        )  # fmt: skip
        audit.add_argument(
            "--action",
            dest="action_prefix",
            metavar="PREFIX",
            help="Only actions starting with this (e.g. tenant., login.).",
        )
        audit.add_argument(
            "--limit", type=int, default=None, help="Only the newest N entries."
        )
        audit.add_argument("--json", action="store_true", help="Print JSON lines.")

        restore = actions.add_parser("import", help="Restore an archive as a tenant.")
        restore.add_argument(
            "archive", metavar="FILE.tar.gz", help="An archive from `tenants export`."
        )
        restore.add_argument(
            "--slug", required=True, help="The new tenant's slug (and schema name)."
        )
        restore.add_argument(
            "--domain", action="append", required=True, dest="domains",
            help="Host name of the new tenant; repeat for more. The first is primary.",
        )  # fmt: skip
        restore.add_argument("--plan", help="Default: the plan in the archive.")
        restore.add_argument("--pod", help=POD_HELP)

        migrate = actions.add_parser(
            "migrate", help="Migrate the template and every tenant, in parallel."
        )
        migrate.add_argument(
            "--parallel", type=int, default=2, help="Tenants migrated at once."
        )

        usage_parser = actions.add_parser(
            "usage", help="A tenant's metered use per day (default: this month)."
        )
        usage_parser.add_argument("slug", help=SLUG_HELP)
        usage_parser.add_argument(
            "--from", dest="start", metavar="YYYY-MM-DD",
            help="First day (default: the first of this month, UTC).",
        )  # fmt: skip
        usage_parser.add_argument(
            "--to", dest="end", metavar="YYYY-MM-DD", help="Last day (default: today)."
        )
        usage_parser.add_argument("--csv", action="store_true", help="CSV on stdout.")

        top = actions.add_parser(
            "top", help="The busiest tenants of the last minute, right now."
        )
        top.add_argument(
            "--limit", type=int, default=20, help="How many tenants (default 20)."
        )
        top.add_argument("--json", action="store_true", help="Print JSON.")

    @property
    def _raw_stderr(self):
        """The stream under Django's wrapper, which would end every write with a
        newline and so break a progress bar redrawn with a carriage return."""
        return getattr(self.stderr, "_out", self.stderr)

    def run_from_argv(self, argv: list[str]) -> None:
        # kept to run the same command on another pod (tenants.pods.remote)
        self._argv = argv[1:]
        super().run_from_argv(argv)

    def handle(self, *args, **options) -> None:
        handler = getattr(self, "handle_" + options["action"].replace("-", "_"))
        # every service this command calls records its change as this operator
        self.actor = Actor.command_line()
        try:
            pod = self._pod_of(options) if directory.enabled() else None
            if pod and pod != directory.local_pod():
                return self._run_on_pod(pod, options)
            handler(options)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc

    def _pod_of(self, options: dict) -> str | None:
        """The pod this command must run on; None: this one (actions over the
        pod's own tenants, such as ``list``)."""
        if options["action"] in ANY_POD_ACTIONS:
            return None
        if options["action"] in PLACING_ACTIONS:
            if options.get("pod"):
                return directory.pod_get(options["pod"]).name
            return placement.choose_pod()
        if options.get("slug"):
            return directory.tenant_pod(options["slug"])
        return None

    def _run_on_pod(self, pod: str, options: dict) -> None:
        argv = getattr(self, "_argv", None)
        if argv is None:
            raise CommandError(
                f"The tenant is on pod {pod}: run this command there (or through "
                "manage.py, which forwards it)."
            )
        if options["action"] in PLACING_ACTIONS and not options.get("pod"):
            argv = [*argv, "--pod", pod]
        returncode = remote.run_on_pod(
            pod, argv, stdout=self.stdout, stderr=self.stderr
        )
        if returncode:
            sys.exit(returncode)

    def handle_create(self, options: dict) -> None:
        if options["csv"]:
            if options["slug"] or options["domains"] or options["name"]:
                raise CommandError(
                    "Give either --from-csv or a single tenant, not both."
                )
            return self.handle_create_from_csv(options["csv"])
        missing = [
            flag
            for flag, key in (("SLUG", "slug"), ("--name", "name"), ("--plan", "plan"))
            if not options[key]
        ] + ([] if options["domains"] else ["--domain"])
        if missing:
            raise CommandError(f"tenants create needs {', '.join(missing)}.")
        result = provisioning.tenant_create(
            slug=options["slug"],
            name=options["name"],
            domains=options["domains"],
            plan=options["plan"],
            admin_email=options["admin_email"],
            admin_password=options["admin_password"],
            actor=self.actor,
        )
        self.stdout.write(
            f"Created tenant {result.tenant.slug} on plan {options['plan']}."
        )
        self.stdout.write(f"Site:  {result.url}")
        self.stdout.write(f"Admin: {result.url}admin/")
        if result.generated_password:
            self.stdout.write(
                f"Admin login: {result.admin_username} / {result.admin_password} "
                "(generated; shown once)"
            )
        else:
            self.stdout.write(f"Admin login: {result.admin_username}")

    def handle_move(self, options: dict) -> None:
        if not directory.enabled():
            raise CommandError(
                "This platform has one pod: there is nowhere to move a tenant to "
                "(docs/scaling.md)."
            )

        def progress(message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()

        slug = options["slug"]
        if options["abort"]:
            source = moves.move_abort(slug=slug)
            self.stdout.write(f"Move of {slug} undone; it serves from {source}.")
            return
        if options["resume"]:
            result = moves.move_resume(slug=slug, on_step=progress)
        else:
            result = moves.tenant_move(
                slug=slug,
                target=options["target"],
                sync_timeout=options["sync_timeout"],
                on_step=progress,
            )
        self.stdout.write(
            f"Moved {slug} from {result.source} to {result.target}; writes were "
            f"paused {result.freeze_seconds:.2f} s."
        )

    def handle_create_from_csv(self, path: str) -> None:
        bar = ProgressBar(bulk.count_rows(path), "Creating tenants", self._raw_stderr)
        result = bulk.tenants_create_from_csv(
            path, on_row=bar.advance, actor=self.actor
        )
        for created in result.created:
            self.stdout.write(
                f"created {created.tenant.slug}  {created.url}  admin login: "
                f"{created.admin_username} / {created.admin_password}"
            )
        for line, slug, reason in result.failed:
            self.stderr.write(f"line {line}: {slug or '(no slug)'}: {reason}")
        self.stdout.write(
            f"{len(result.created)} created, {len(result.failed)} failed."
        )
        if result.failed:
            raise CommandError(f"{len(result.failed)} row(s) failed; see above.")

    def handle_list(self, options: dict) -> None:
        found = listing.list_tenants(pod=options["pod"])
        rows = found.rows
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
        elif not rows:
            self.stdout.write("No tenants.")
        else:
            pods = directory.enabled()
            header = f"{'SLUG':<20} {'PLAN':<12} {'STATUS':<10} "
            self.stdout.write(header + ("POD      " if pods else "") + "DOMAIN")
            for row in rows:
                self.stdout.write(
                    f"{row['slug']:<20} {row['plan']:<12} {row['status']:<10} "
                    + (f"{row['pod']:<8} " if pods else "")
                    + f"{row['primary_domain'] or '-'}"
                )
        if found.unreachable:
            raise CommandError(
                "Not listed: " + "; ".join(found.unreachable) + " (the other pods' "
                "tenants are above)."
            )

    def handle_show(self, options: dict) -> None:
        row = tenant_as_dict(tenant_get(options["slug"]))
        if options["json"]:
            self.stdout.write(json.dumps(row, indent=2))
            return
        for key in ("slug", "name", "plan", "status", "created", "primary_domain"):
            self.stdout.write(f"{key + ':':<16}{row[key]}")
        self.stdout.write(f"{'domains:':<16}{', '.join(row['domains'])}")

    def handle_set_plan(self, options: dict) -> None:
        tenant = lifecycle.tenant_set_plan(
            slug=options["slug"], plan=options["plan"], actor=self.actor
        )
        self.stdout.write(f"Tenant {tenant.slug} is now on plan {tenant.plan.name}.")

    def handle_add_domain(self, options: dict) -> None:
        tenant = tenant_get(options["slug"])
        domain = ownership.domain_add(
            tenant=tenant,
            host=options["host"],
            method=options["method"],
            by_operator=True,
            actor=self.actor,
        )
        if domain.is_verified:
            self.stdout.write(f"Added {domain.domain} to {tenant.slug}.")
            return
        self.stdout.write(f"Added {domain.domain} to {tenant.slug} (pending).")
        self.stdout.write(ownership_instructions(domain))
        if not options["verify"]:
            schedule_domain_verification(domain.pk)
            self.stdout.write("Verification is retried in the background.")
            return
        self._verify(domain)

    def handle_verify_domain(self, options: dict) -> None:
        tenant = tenant_get(options["slug"])
        self._verify(ownership.domain_get(tenant=tenant, host=options["host"]))

    def _verify(self, domain) -> None:
        try:
            ownership.domain_verify(domain=domain)
        except DomainVerificationFailed as exc:
            schedule_domain_verification(domain.pk)
            raise CommandError(
                f"{domain.domain} is not verified yet: {exc} Retried in the background."
            ) from exc
        self.stdout.write(f"Verified {domain.domain}: it serves {domain.tenant.slug}.")

    def handle_remove_domain(self, options: dict) -> None:
        tenant = tenant_get(options["slug"])
        ownership.domain_remove(tenant=tenant, host=options["host"], actor=self.actor)
        self.stdout.write(f"Removed {options['host'].lower()} from {tenant.slug}.")

    def handle_primary_domain(self, options: dict) -> None:
        tenant = tenant_get(options["slug"])
        domain = ownership.domain_make_primary(
            tenant=tenant, host=options["host"], actor=self.actor
        )
        self.stdout.write(f"{domain.domain} is now {tenant.slug}'s primary domain.")

    def handle_domains(self, options: dict) -> None:
        tenant = tenant_get(options["slug"])
        rows = [domain_as_dict(domain) for domain in ownership.tenant_domains(tenant)]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for row in rows:
            primary = " (primary)" if row["primary"] else ""
            self.stdout.write(f"{row['domain']:<40}{row['status']:<10}{primary}")
            if row["status"] != "verified":
                self.stdout.write(f"    {row['instructions']}")
                if row["last_error"]:
                    self.stdout.write(f"    last check: {row['last_error']}")

    def handle_hsts(self, options: dict) -> None:
        tenant = tenant_get(options["slug"])
        ownership.tenant_set_hsts(
            tenant=tenant, enabled=options["state"] == "on", actor=self.actor
        )
        self.stdout.write(f"HSTS is {options['state']} for {tenant.slug}.")

    def handle_suspend(self, options: dict) -> None:
        lifecycle.tenant_set_status(
            slug=options["slug"], status=Tenant.Status.SUSPENDED, actor=self.actor
        )
        self.stdout.write(f"Suspended {options['slug']}: its site now answers 503.")

    def handle_resume(self, options: dict) -> None:
        lifecycle.tenant_set_status(
            slug=options["slug"], status=Tenant.Status.ACTIVE, actor=self.actor
        )
        self.stdout.write(f"Resumed {options['slug']}.")

    def handle_delete(self, options: dict) -> None:
        if options["backup"]:
            if not options["yes"]:
                provisioning.tenant_delete(slug=options["slug"], confirm=False)
            summary = portability.tenant_export(
                slug=options["slug"], output=Path(options["backup"]), actor=self.actor
            )
            self.stdout.write(f"Backup written to {summary.path}.")
        provisioning.tenant_delete(
            slug=options["slug"], confirm=options["yes"], actor=self.actor
        )
        self.stdout.write(
            f"Deleted tenant {options['slug']}, its schema and its media."
        )

    def handle_export(self, options: dict) -> None:
        if options["portable"]:
            manifest = data_export.write_portable_export(
                slug=options["slug"], output=Path(options["output"]), actor=self.actor
            )
            self.stdout.write(
                f"Exported {options['slug']} (portable) to {options['output']}: "
                f"{manifest['pages']} pages, {manifest['users']} users, "
                f"{len(manifest['images'])} images, "
                f"{len(manifest['documents'])} documents."
            )
            return
        summary = portability.tenant_export(
            slug=options["slug"], output=Path(options["output"]), actor=self.actor
        )
        self.stdout.write(
            f"Exported {options['slug']} to {summary.path}: {summary.tables} tables, "
            f"{summary.rows} rows, {summary.media_files} media files."
        )

    def handle_backup(self, options: dict) -> None:
        backup = snapshots.backup_take(slug=options["slug"], actor=self.actor)
        self.stdout.write(
            f"Backup {backup.pk} of {backup.tenant_schema}: {backup.storage_name} "
            f"({backup.size_bytes} bytes, sha256 {backup.sha256})."
        )

    def handle_backups(self, options: dict) -> None:
        rows = [
            snapshots.backup_as_dict(b)
            for b in snapshots.backups_list(slug=options["slug"])
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write(f"No backups of {options['slug']}.")
            return
        self.stdout.write(
            f"{'ID':>6} {'TAKEN (UTC)':<20} {'KIND':<10} {'STATUS':<8} "
            f"{'SIZE':>10}  SHA256"
        )
        for row in rows:
            self.stdout.write(
                f"{row['id']:>6} {row['created_at'][:19]:<20} {row['kind']:<10} "
                f"{row['status']:<8} {row['size_bytes']:>10}  "
                f"{(row['sha256'] or '-')[:16]}"
            )

    def handle_restore(self, options: dict) -> None:
        if options["undo"]:
            undone = restore.restore_undo(slug=options["slug"], actor=self.actor)
            self.stdout.write(
                f"Undid restore {undone.pk} of {options['slug']}: the state before "
                "it is live again."
            )
            return
        result = restore.restore_backup(
            slug=options["slug"], backup_id=options["backup"], actor=self.actor
        )
        self.stdout.write(
            f"Restored {options['slug']} from backup {options['backup']}: "
            f"{result.tables} tables, {result.rows} rows, {result.media_files} media "
            f"files verified and live. Undo until "
            f"{result.restore.undo_until:%Y-%m-%d %H:%M} UTC with "
            f"`tenants restore {options['slug']} --undo`."
        )

    def handle_clone(self, options: dict) -> None:
        tenant = clone.tenant_clone(
            slug=options["slug"],
            to=options["to"],
            domains=options["domains"],
            plan=options["plan"],
            actor=self.actor,
        )
        url = provisioning.tenant_url(options["domains"][0].lower())
        self.stdout.write(
            f"Cloned {options['slug']} as staging copy {tenant.slug}: {url}"
        )

    def handle_audit(self, options: dict) -> None:
        since = trail.parse_since(options["since"]) if options["since"] else None
        entries = trail.audit_entries(
            tenant=options["slug"],
            since=since,
            action=options["action_prefix"],
            limit=options["limit"],
        )
        if options["json"]:
            for entry in entries:
                self.stdout.write(json.dumps(trail.entry_as_dict(entry)))
            return
        if not entries:
            self.stdout.write("No audit entries.")
            return
        for entry in entries:
            where = entry.source + (f" {entry.ip}" if entry.ip else "")
            self.stdout.write(
                f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.tenant_schema or '-':<16} "
                f"{entry.actor:<24} {where:<18} {entry.action:<28} {entry.target}"
            )

    def handle_import(self, options: dict) -> None:
        tenant = portability.tenant_import(
            archive_path=Path(options["archive"]),
            slug=options["slug"],
            domains=options["domains"],
            plan=options["plan"],
            actor=self.actor,
        )
        url = provisioning.tenant_url(options["domains"][0].lower())
        self.stdout.write(f"Imported {options['archive']} as {tenant.slug}: {url}")

    def handle_migrate(self, options: dict) -> None:
        if options["parallel"] < 1:
            raise CommandError("--parallel must be at least 1.")
        result = migrate_fleet(
            parallel=options["parallel"],
            progress=lambda total: ProgressBar(
                total, "Migrating tenants", self._raw_stderr
            ),
        )
        self.stdout.write(fleet_summary(result))
        if result.failed:
            raise CommandError(
                f"{len(result.failed)} tenant(s) failed; run the command again to "
                "retry them (finished tenants are skipped)."
            )

    def handle_usage(self, options: dict) -> None:
        tenant = tenant_get(options["slug"])
        start, end = reports.period_bounds()
        if options["start"]:
            start = reports.parse_day(options["start"], option="--from")
        if options["end"]:
            end = reports.parse_day(options["end"], option="--to")
        rows = reports.usage_days(tenant=tenant, start=start, end=end)
        columns = [*counters.COUNTERS, *counters.SNAPSHOTS]
        if options["csv"]:
            writer = csv.writer(self.stdout, lineterminator="\n")
            writer.writerow(["day", *columns])
            for row in rows:
                writer.writerow(
                    [row.day.isoformat(), *(row.counts[c] for c in columns)]
                )
            return
        self.stdout.write(
            f"Usage of {tenant.slug} (plan {tenant.plan.name}) from {start} to {end}"
        )
        widths = [max(len(c), 8) for c in columns]
        self.stdout.write(
            "DAY         "
            + " ".join(c.upper().rjust(w) for c, w in zip(columns, widths, strict=True))
        )
        for row in rows:
            self.stdout.write(
                f"{row.day.isoformat():<12}"
                + " ".join(
                    str(row.counts[c]).rjust(w)
                    for c, w in zip(columns, widths, strict=True)
                )
            )
        totals = reports.period_totals(rows)
        self.stdout.write(
            f"{'TOTAL':<12}"
            + " ".join(
                str(totals[c]).rjust(w) for c, w in zip(columns, widths, strict=True)
            )
        )

    def handle_top(self, options: dict) -> None:
        rows = reports.top_tenants(limit=options["limit"])
        if options["json"]:
            self.stdout.write(
                json.dumps([row.__dict__ for row in rows], indent=2, default=str)
            )
            return
        if not rows:
            self.stdout.write("No tenant traffic in the last minute.")
            return
        self.stdout.write(
            f"{'TENANT':<20} {'REQ/S':>8} {'REQUESTS':>9} {'429':>6} {'503':>6} "
            f"{'P95_MS':>7} {'IN_FLIGHT':>9}"
        )
        for row in rows:
            p95 = "-" if row.p95_ms is None else f"<={row.p95_ms}"
            self.stdout.write(
                f"{row.schema:<20} {row.requests_per_second:>8.2f} {row.requests:>9} "
                f"{row.rejected_429:>6} {row.rejected_503:>6} {p95:>7} "
                f"{row.in_flight:>9}"
            )
