"""Fixtures of the browser tests: Debian's Chromium (installed here when missing), two
committed tenants of their own, the product on gunicorn, and Playwright.

The journeys drive real processes (gunicorn, the Celery worker), which see committed
data only, so the tenants are created outside any test transaction and dropped at the
end. They are tenants of their own, on a plan of their own, so that nothing a journey
does (pages, uploads, a tiny rate limit) reaches the demo tenants other tests rely on.
"""

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from cms_project import devstack
from content.demo import create_editor
from tenants.models import Plan, Tenant
from tenants.provisioning.creation import tenant_create, tenant_delete
from tenants.tariffs.plans import plan_create
from tests.integration import free_port, process_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_PACKAGES = ("chromium", "chromium-driver")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # *.localhost is loopback; any other name must not reach the network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE *.localhost, EXCLUDE localhost",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Auto-waiting locators and expect() give up after this long.
STEP_TIMEOUT_MS = 15_000

SHOP_PLAN = "e2e-shop"
EDITOR = "editor"


@dataclass(frozen=True)
class E2ETenant:
    slug: str
    name: str
    host: str
    editor_password: str


SHOP = E2ETenant(
    slug="e2eshop", name="E2E Shop", host="e2eshop.localhost", editor_password="shop-1"
)
OTHER = E2ETenant(
    slug="e2eother", name="E2E Other", host="e2eother.localhost", editor_password="ot-2"
)


@contextlib.contextmanager
def orm_access(django_db_blocker) -> Iterator[None]:
    """Let a test touch the committed database while Playwright's sync API is alive.

    Playwright runs an asyncio loop in this thread, and Django refuses ORM calls from a
    thread with a running loop; the calls here are plain blocking ones between browser
    steps, so the guard is lifted for their duration only."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with django_db_blocker.unblock():
            yield
            connection.set_schema_to_public()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# --- Chromium -------------------------------------------------------------------------


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=120", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def install_chromium() -> str | None:
    """Install Debian's Chromium if it is missing; the reason it cannot be, or None."""
    if CHROMIUM.exists():
        return None
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing and installing it needs root"
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install it"
    install = ("install", "-y", "-q", *CHROMIUM_PACKAGES)
    result = _apt_get(*install)
    if result.returncode != 0:  # stale package lists: refresh them once
        _apt_get("update", "-q")
        result = _apt_get(*install)
    if result.returncode != 0 or not CHROMIUM.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        return f"apt-get install {' '.join(CHROMIUM_PACKAGES)} failed: {' '.join(tail)}"
    return None


@pytest.fixture(scope="session")
def chromium() -> Path:
    reason = install_chromium()
    if reason:
        pytest.skip(f"browser tests need Chromium: {reason}")
    return CHROMIUM


# --- Tenants and the product ----------------------------------------------------------


def _add_editor(tenant: E2ETenant) -> None:
    """An editor who may publish (Wagtail's Moderators group) and use the admin."""
    with schema_context(tenant.slug):
        create_editor(
            username=EDITOR,
            email=f"{EDITOR}@{tenant.host}",
            password=tenant.editor_password,
            group="Moderators",
            first_name="E2E",
        )


def _remove_e2e_tenants() -> None:
    for tenant in (SHOP, OTHER):
        if Tenant.objects.filter(schema_name=tenant.slug).exists():
            tenant_delete(slug=tenant.slug, confirm=True)
    Plan.objects.filter(name=SHOP_PLAN).delete()
    connection.set_schema_to_public()


@pytest.fixture(scope="module")
def e2e_tenants(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Two committed tenants with an editor each; the shop on a plan of its own."""
    with django_db_blocker.unblock():
        _remove_e2e_tenants()  # of an earlier run that was killed half-way
        plan_create(name=SHOP_PLAN, limits={}, base="pro", title="E2E shop")
        tenant_create(
            slug=SHOP.slug, name=SHOP.name, domains=[SHOP.host], plan=SHOP_PLAN
        )
        tenant_create(
            slug=OTHER.slug, name=OTHER.name, domains=[OTHER.host], plan="starter"
        )
        for tenant in (SHOP, OTHER):
            _add_editor(tenant)
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        _remove_e2e_tenants()


@pytest.fixture(scope="module")
def server_port(e2e_tenants, tmp_path_factory) -> Iterator[int]:
    """The product on gunicorn at 127.0.0.1 (two workers)."""
    port = free_port()
    process = devstack.start_gunicorn(
        port,
        env=process_env(
            DJANGO_SETTINGS_MODULE="tests.e2e.settings", GUNICORN_ACCESSLOG="/dev/null"
        ),
        log_path=tmp_path_factory.mktemp("e2e-gunicorn") / "gunicorn.log",
        workers=2,
        # a shared, loaded machine can take a minute to import the app in each worker
        timeout=180,
    )
    yield port
    devstack.stop_process(process)


@pytest.fixture(scope="module")
def browser(chromium, server_port):
    """Headless Chromium driven by Playwright, for one module's journeys: started
    after the server, stopped before the tenants are dropped and before any later
    test uses the ORM (Django refuses it while Playwright's event loop is alive)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()


# --- Journeys -------------------------------------------------------------------------


class Journey:
    """A journey's steps: a screenshot after each under ``tests/e2e/artifacts/<test>/``
    and, when one breaks, a failure that names the step and where the browser was."""

    def __init__(self, *, browser, port: int, directory: Path) -> None:
        self.browser = browser
        self.port = port
        self.directory = directory
        self.number = 0
        self.contexts: list = []
        self.page = self.new_page()

    def new_page(self):
        """A page in a fresh browser context (its own cookies: a separate visitor)."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(STEP_TIMEOUT_MS)
        self.contexts.append(context)
        return context.new_page()

    def url(self, tenant: E2ETenant, path: str = "/") -> str:
        return f"http://{tenant.host}:{self.port}{path}"

    @contextlib.contextmanager
    def step(self, title: str, *, page=None) -> Iterator[None]:
        self.number += 1
        page = page or self.page
        name = (
            f"{self.number:02d}-{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}"
        )
        try:
            yield
        except Exception as exc:
            shot = self.screenshot(page, f"{name}-FAILED")
            raise AssertionError(
                f"step {self.number} ({title!r}) failed at {page.url}: {exc}\n"
                f"screenshot: {shot}"
            ) from exc
        self.screenshot(page, name)

    def screenshot(self, page, name: str) -> Path | str:
        from playwright.sync_api import Error as PlaywrightError

        path = self.directory / f"{name}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
        except PlaywrightError as exc:
            return f"none ({exc})"
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def journey(browser, server_port, request) -> Iterator[Journey]:
    directory = ARTIFACTS / request.node.name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    journey = Journey(browser=browser, port=server_port, directory=directory)
    yield journey
    journey.close()


def log_in(journey: Journey, tenant: E2ETenant, *, password: str | None = None) -> None:
    """Fill in the tenant's admin login form as its editor (or with ``password``)."""
    from playwright.sync_api import expect

    page = journey.page
    page.goto(journey.url(tenant, "/admin/login/"))
    page.get_by_label("Username").fill(EDITOR)
    page.get_by_label("Password").fill(password or tenant.editor_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(journey.url(tenant, "/admin/"))
    expect(page.get_by_role("heading", name="Site summary")).to_be_visible()
