"""Every publish an editor makes goes through the fair queue and a real Celery worker,
seen in a real browser: the page editor's Publish with its live status, a moderator
approving a workflow, a bulk publish of a subtree with its progress, and an editor who
may not publish finding no way to (button, bulk, API, crafted POST).
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django_tenants.utils import schema_context
from playwright.sync_api import expect
from wagtail.models import Page, Site

from content.models import ArticlePage, BackgroundJob
from tests.e2e.conftest import EDITOR, SHOP, Journey, log_in, orm_access
from tests.e2e.test_editor_journeys import _publish, _slug, _start_article

WRITER = "writer"
WRITER_PASSWORD = "writer-pass-1"
LIVE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def writer(e2e_tenants, django_db_blocker) -> str:
    """A user of the shop in Wagtail's Editors group: edits and submits for
    moderation, may not publish."""
    with orm_access(django_db_blocker), schema_context(SHOP.slug):
        user = get_user_model().objects.create_user(
            username=WRITER, password=WRITER_PASSWORD, first_name="Writer"
        )
        user.groups.add(Group.objects.get(name="Editors"))
        user.user_permissions.add(Permission.objects.get(codename="access_admin"))
    return WRITER


def _log_in_as(journey: Journey, username: str, password: str, *, page=None) -> None:
    page = page or journey.page
    page.goto(journey.url(SHOP, "/admin/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(journey.url(SHOP, "/admin/"))


def _wait_live(journey: Journey, visitor, path: str) -> None:
    deadline_ms = LIVE_TIMEOUT_MS
    status = None
    while deadline_ms > 0:
        status = visitor.goto(journey.url(SHOP, path)).status
        if status == 200:
            return
        visitor.wait_for_timeout(500)
        deadline_ms -= 500
    raise AssertionError(f"{path} was not live in time (last status {status})")


def test_publish_puts_the_page_live_through_the_worker_with_its_status(
    journey, celery_worker
):
    page = journey.page
    title, text = "Queue-published launch", "Through the shared pool."

    with journey.step("editor (a moderator) logs in and writes an article"):
        log_in(journey, SHOP)
        _start_article(journey, SHOP, title=title, text=text)

    with journey.step("Publish returns at once: saved and queued"):
        _publish(journey)
        expect(
            page.get_by_text(f"“{title}” is saved and queued for publishing.")
        ).to_be_visible()
        expect(page).to_have_url(re.compile(r"/admin/pages/\d+/edit/\?cms_job=\d+"))
        expect(page.locator("#cms-publish-status")).to_be_visible()

    with journey.step("the status panel follows the job until it is live"):
        expect(page.locator("#cms-publish-status")).to_have_text(
            "Published: the page is live.", timeout=LIVE_TIMEOUT_MS
        )

    visitor = journey.new_page()
    with journey.step("a visitor reads it", page=visitor):
        visitor.goto(journey.url(SHOP, f"/{_slug(title)}/"))
        expect(visitor.get_by_role("heading", name=title)).to_be_visible()


def test_moderator_approves_a_workflow_and_the_page_goes_live_through_the_worker(
    journey, writer, celery_worker, django_db_blocker
):
    page = journey.page
    title, text = "Reviewed announcement", "Approved by a moderator."

    with journey.step("the writer submits an article for moderation"):
        _log_in_as(journey, WRITER, WRITER_PASSWORD)
        _start_article(journey, SHOP, title=title, text=text)
        _publish(journey, action="Submit to Moderators approval")
        expect(
            page.get_by_text(re.compile(rf"Page '{title}' .*submitted for moderation"))
        ).to_be_visible()

    moderator = journey.new_page()
    with journey.step("a moderator approves it in the editor", page=moderator):
        _log_in_as(journey, EDITOR, SHOP.editor_password, page=moderator)
        with orm_access(django_db_blocker), schema_context(SHOP.slug):
            page_id = Page.objects.get(title=title).pk
        moderator.goto(
            journey.url(SHOP, f"/admin/pages/{page_id}/edit/"), timeout=LIVE_TIMEOUT_MS
        )
        moderator.get_by_role("button", name="More actions").last.click()
        moderator.get_by_role("button", name="Approve and Publish", exact=True).click()

    visitor = journey.new_page()
    with journey.step("the worker puts it live", page=visitor):
        _wait_live(journey, visitor, f"/{_slug(title)}/")
        expect(visitor.get_by_role("heading", name=title)).to_be_visible()


def test_bulk_publish_of_a_subtree_shows_its_progress(
    journey, celery_worker, django_db_blocker
):
    page = journey.page
    children = 60
    with orm_access(django_db_blocker), schema_context(SHOP.slug):
        home = Site.objects.get(is_default_site=True).root_page
        root = ArticlePage(title="Bulk section", live=False)
        home.add_child(instance=root)
        root.save_revision()
        for index in range(children):
            child = ArticlePage(title=f"Bulk page {index}", live=False)
            Page.objects.get(pk=root.pk).add_child(instance=child)
            child.save_revision()
        root_id = root.pk

    with journey.step("editor selects the section in the listing's bulk Publish"):
        log_in(journey, SHOP)
        page.goto(journey.url(SHOP, f"/admin/pages/{home.pk}/"))
        page.goto(
            journey.url(
                SHOP,
                f"/admin/bulk/wagtailcore/page/publish/?id={root_id}"
                f"&next=/admin/pages/{home.pk}/",
            )
        )
        page.get_by_label("Include descendants").check()
        page.get_by_role("button", name=re.compile("Yes, publish", re.I)).click()
        expect(
            page.get_by_text("1 page(s) and their subpages queued for publishing.")
        ).to_be_visible()

    with journey.step("the listing marks the section as publishing, or it is done"):
        marker = page.locator(".cms-publish-pending")
        assert marker.count() in (0, 1)

    with journey.step("the editor of the section shows the progress until done"):
        status = page.locator("#cms-publish-status")
        with orm_access(django_db_blocker), schema_context(SHOP.slug):
            job = BackgroundJob.objects.get(page_id=root_id, kind="publish_subtree")
        page.goto(
            journey.url(SHOP, f"/admin/pages/{root_id}/edit/?cms_job={job.pk}"),
            timeout=LIVE_TIMEOUT_MS,
        )
        expect(status).to_have_text(
            f"Published: the page is live. ({children + 1} / {children + 1} pages)",
            timeout=LIVE_TIMEOUT_MS,
        )

    with journey.step("the Background jobs report shows pages done / total"):
        page.goto(journey.url(SHOP, "/admin/content/jobs/"))
        row = page.locator(f"tr[data-job-id='{job.pk}']")
        expect(row).to_contain_text(f"{children + 1} / {children + 1} pages")
        expect(row).to_contain_text("Done")


def test_an_editor_who_may_not_publish_finds_no_way_to(
    journey, writer, celery_worker, django_db_blocker
):
    page = journey.page
    title = "Writer's draft"
    with orm_access(django_db_blocker), schema_context(SHOP.slug):
        home = Site.objects.get(is_default_site=True).root_page
        draft = ArticlePage(title=title, live=False)
        home.add_child(instance=draft)
        draft.save_revision()
        draft_id = draft.pk

    with journey.step("the writer's editor offers no Publish"):
        _log_in_as(journey, WRITER, WRITER_PASSWORD)
        page.goto(journey.url(SHOP, f"/admin/pages/{draft_id}/edit/"))
        page.get_by_role("button", name="More actions").last.click()
        expect(page.get_by_role("button", name="Publish", exact=True)).to_have_count(0)

    with journey.step("a crafted POST with the publish action saves a draft only"):
        page.evaluate(
            """() => {
                const form = document.querySelector("form#page-edit-form");
                const input = document.createElement("input");
                input.type = "hidden"; input.name = "action-publish"; input.value = "1";
                form.appendChild(input);
                form.submit();
            }"""
        )
        page.wait_for_load_state()

    with journey.step("the bulk Publish has nothing it may publish"):
        page.goto(
            journey.url(SHOP, f"/admin/bulk/wagtailcore/page/publish/?id={draft_id}")
        )
        expect(
            page.get_by_role("button", name=re.compile("Yes, publish", re.I))
        ).to_have_count(0)

    with journey.step("Publish with subpages is refused"):
        page.goto(
            journey.url(SHOP, f"/admin/content/publish-in-background/{draft_id}/")
        )
        expect(page).to_have_url(journey.url(SHOP, "/admin/"))

    with journey.step("the write API refuses to publish, even with a publish token"):
        from django.contrib.auth import get_user_model

        from content.integrations.tokens import token_create
        from tenants.models import Tenant

        with orm_access(django_db_blocker), schema_context(SHOP.slug):
            secret = token_create(
                tenant=Tenant.objects.select_related("plan").get(schema_name=SHOP.slug),
                user=get_user_model().objects.get(username=WRITER),
                name="writer's script",
                scopes=["read", "write", "publish"],
            ).plaintext
        # (Playwright's own HTTP client resolves names itself: the loopback by
        # address, the tenant by its Host header)
        response = page.request.patch(
            f"http://127.0.0.1:{journey.port}/api/v2/articles/{draft_id}/",
            data={"publish": True},
            headers={"Authorization": f"Bearer {secret}", "Host": SHOP.host},
        )
        assert response.status == 403, response.text()

    with orm_access(django_db_blocker), schema_context(SHOP.slug):
        assert not BackgroundJob.objects.filter(page_id=draft_id).exists()
        assert not Page.objects.get(pk=draft_id).live
