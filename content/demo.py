"""Demo tenants for `make up`: two sites with articles and an editor each.

Idempotent: a second run finds the tenants and changes nothing.
"""

import datetime
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django_tenants.utils import schema_context
from wagtail.models import Site

from content.models import ArticlePage
from tenants.errors import TenantNotFound
from tenants.models import Tenant
from tenants.pods import directory
from tenants.provisioning.creation import tenant_create, tenant_url


@dataclass(frozen=True)
class DemoTenant:
    slug: str
    name: str
    domain: str
    plan: str
    editor_password: str
    articles: tuple[tuple[str, str, str], ...]


DEMO_TENANTS = (
    DemoTenant(
        slug="acme",
        name="Acme Rockets",
        domain="acme.localhost",
        plan="pro",
        editor_password="acme-editor-demo",
        articles=(
            ("Acme launches the Mark IV", "A rocket for every road runner.",
             "The Mark IV rocket reaches the canyon in record time."),
            ("Safety first at Acme", "Anvils now ship with warning labels.",
             "Every anvil leaves the factory with a clearly printed label."),
            ("Inside the Acme catalogue", "Forty years of gadgets.",
             "From portable holes to giant magnets, the catalogue keeps growing."),
        ),
    ),
    DemoTenant(
        slug="globex",
        name="Globex Corporation",
        domain="globex.localhost",
        plan="starter",
        editor_password="globex-editor-demo",
        articles=(
            ("Globex opens a new campus", "Cypress Creek welcomes employees.",
             "The new campus features hammocks and a state-of-the-art lab."),
            ("Quarterly results at Globex", "Growth in every division.",
             "Revenue grew across all divisions this quarter."),
        ),
    ),
)  # fmt: skip

EDITOR_USERNAME = "editor"


def _add_articles(demo: DemoTenant) -> None:
    home = Site.objects.get(is_default_site=True).root_page.specific
    for index, (title, intro, text) in enumerate(demo.articles):
        if ArticlePage.objects.filter(title=title).exists():
            continue
        article = ArticlePage(
            title=title,
            intro=intro,
            publication_date=datetime.date(2026, 1, 10 + index),
            body=[
                ("paragraph", f"<p>{text}</p>"),
                ("quote", {"text": f"{demo.name} says hello.", "attribution": "Staff"}),
            ],
        )
        home.add_child(instance=article)
        article.save_revision().publish()


def create_editor(
    *, username: str, email: str, password: str, group: str, first_name: str
):
    """A user of the current tenant who may use the admin, in one of Wagtail's groups
    (``Editors`` submit pages for moderation, ``Moderators`` also publish)."""
    user = get_user_model().objects.create_user(
        username=username,
        email=email,
        password=password,
        first_name=first_name,
        last_name="Editor",
    )
    user.groups.add(Group.objects.get(name=group))
    # Wagtail's groups carry page permissions but not admin access in every version:
    # grant it explicitly.
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="wagtailadmin", codename="access_admin"
        )
    )
    return user


def _add_editor(demo: DemoTenant) -> None:
    if get_user_model().objects.filter(username=EDITOR_USERNAME).exists():
        return
    create_editor(
        username=EDITOR_USERNAME,
        email=f"editor@{demo.domain}",
        password=demo.editor_password,
        group="Editors",
        first_name="Demo",
    )


def _lives_elsewhere(slug: str) -> bool:
    """With pods: whether the directory places ``slug`` on another pod (seeded
    there, not here)."""
    if not directory.enabled():
        return False
    try:
        return directory.tenant_pod(slug) != directory.local_pod()
    except TenantNotFound:
        return False


def seed_demo(only: list[str] | None = None) -> list[tuple[DemoTenant, str]]:
    """Create the demo tenants that are missing (those in ``only``, if given);
    return each with its site URL."""
    seeded = []
    for demo in DEMO_TENANTS:
        if (only and demo.slug not in only) or _lives_elsewhere(demo.slug):
            continue
        if not Tenant.objects.filter(schema_name=demo.slug).exists():
            tenant_create(
                slug=demo.slug,
                name=demo.name,
                domains=[demo.domain],
                plan=demo.plan,
                admin_email=f"admin@{demo.domain}",
                admin_password=f"{demo.slug}-admin-demo",
            )
        with schema_context(demo.slug):
            _add_articles(demo)
            _add_editor(demo)
        seeded.append((demo, tenant_url(demo.domain)))
    return seeded
