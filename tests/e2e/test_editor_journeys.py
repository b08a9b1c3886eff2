"""Editors' journeys through the Wagtail admin in a real browser (Chromium), against the
product on gunicorn and a real Celery worker: what an editor and a visitor see.

Each journey screenshots every step under ``tests/e2e/artifacts/<test>/``; a broken
step fails with its name and the page the browser was on (``Journey.step``).
"""

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from django.utils import timezone
from PIL import Image as PILImage
from playwright.sync_api import expect

from tests.e2e.conftest import (
    EDITOR,
    OTHER,
    SHOP,
    SHOP_PLAN,
    E2ETenant,
    Journey,
    log_in,
    orm_access,
)

IMAGE_TITLE = "Red rocket"
# The go-live time is set this far ahead: time enough to publish before it passes.
SCHEDULE_LEAD_SECONDS = 10
GO_LIVE_TIMEOUT_SECONDS = 60
# True once Wagtail's Stimulus app has connected the controller that copies a page's
# title into its slug.
TITLE_SYNC_CONNECTED = """() => {
    const title = document.querySelector("#id_title");
    const app = window.wagtail && window.wagtail.app;
    const ready = title && app;
    return Boolean(ready && app.getControllerForElementAndIdentifier(title, "w-sync"));
}"""


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "red-rocket.png"
    PILImage.new("RGB", (160, 90), (200, 60, 30)).save(path)
    return path


def _start_article(
    journey: Journey, tenant: E2ETenant, *, title: str, text: str, bold: str = ""
):
    """Open a new article under the tenant's home page and fill in its title and a
    rich text paragraph (Draftail), ``bold`` typed in bold after ``text``."""
    page = journey.page
    page.goto(journey.url(tenant, "/admin/pages/"))
    page.get_by_role("link", name=tenant.name, exact=True).first.click()
    page.get_by_role("button", name="Actions", exact=True).click()
    page.get_by_role("link", name="Add child page").click()
    expect(page.get_by_role("heading", name="New: Article page")).to_be_visible()
    # The heading shows before the admin's scripts have run: a title typed then is
    # never copied into the slug (Wagtail's w-sync controller was not listening yet),
    # and the page fails validation on an empty slug (Promote tab).
    page.wait_for_function(TITLE_SYNC_CONNECTED)
    title_field = page.get_by_placeholder("Page title*")
    title_field.fill(title)
    title_field.blur()
    expect(page.locator("input[name='slug']")).to_have_value(_slug(title))
    page.get_by_role("button", name="Insert a block").last.click()
    page.get_by_role("option", name="Paragraph").click()
    editor = page.locator(".public-DraftEditor-content").last
    editor.click()
    page.keyboard.type(text)
    if bold:
        page.keyboard.press("Control+b")
        page.keyboard.type(bold)
        page.keyboard.press("Control+b")
        expect(editor.locator("[style*='font-weight']", has_text=bold)).to_be_visible()
    expect(editor).to_contain_text(text + bold)
    # Draftail writes its content to the form a moment after typing (debounced):
    # saving before that would save an empty paragraph.
    expect(page.locator("input[name='body-0-value']")).to_have_value(
        re.compile(re.escape(bold or text))
    )


def _publish(journey: Journey, *, action: str = "Publish"):
    page = journey.page
    page.get_by_role("button", name="More actions").last.click()
    page.get_by_role("button", name=action, exact=True).click()


def test_editor_publishes_an_article_with_an_image_and_sees_it_live(
    journey, image_file, celery_worker
):
    page = journey.page
    title = "Mark V lands on the mesa"
    text, bold = "The Mark V touched down ", "without a scratch"

    with journey.step("editor logs in at the tenant's admin"):
        log_in(journey, SHOP)

    with journey.step("upload an image"):
        page.get_by_role("link", name="Images", exact=True).click()
        page.get_by_role("link", name="Add an image").click()
        page.locator("input[type=file]").set_input_files(image_file)
        expect(page.locator(".status-msg.success")).to_contain_text("Upload successful")
        page.get_by_label("Title").fill(IMAGE_TITLE)
        page.get_by_role("button", name="Update").click()
        expect(page.locator(".status-msg.update-success")).to_be_attached()

    with journey.step("create an article with rich text"):
        _start_article(journey, SHOP, title=title, text=text, bold=bold)

    with journey.step("add an image block from the image chooser"):
        page.get_by_role("button", name="Insert a block").last.click()
        page.get_by_role("option", name="Image").click()
        page.get_by_role("button", name="Choose an image").last.click()
        chooser = page.get_by_role("dialog").filter(has_text="Choose an image")
        chooser.locator("a.image-choice", has_text=IMAGE_TITLE).click()
        expect(chooser).to_have_count(0)
        expect(page.locator("[data-chooser-title]").last).to_have_text(IMAGE_TITLE)

    with journey.step("publish the article: queued, then live through the worker"):
        _publish(journey)
        expect(
            page.get_by_text(f"“{title}” is saved and queued for publishing.")
        ).to_be_visible()
        expect(page.locator("#cms-publish-status")).to_have_text(
            "Published: the page is live.", timeout=60_000
        )

    visitor = journey.new_page()
    with journey.step("a visitor finds it on the home page", page=visitor):
        visitor.goto(journey.url(SHOP))
        visitor.get_by_role("link", name=title).click()

    with journey.step("the article shows its text and image", page=visitor):
        expect(visitor.get_by_role("heading", name=title)).to_be_visible()
        expect(visitor.get_by_text(text + bold)).to_be_visible()
        expect(visitor.locator("b, strong").filter(has_text=bold)).to_be_visible()
        image = visitor.locator("article img, main img").first
        expect(image).to_have_attribute(
            "src", re.compile(rf"^/media/tenants/{SHOP.slug}/images/")
        )
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") > 0, "the image did not load"


def test_scheduled_article_goes_live_through_the_celery_worker(journey, celery_worker):
    from content.tasks import sweep_scheduled_publishing_task

    page = journey.page
    title, text = "Countdown to the Mark VI", "Liftoff is scheduled."

    with journey.step("editor logs in"):
        log_in(journey, SHOP)

    with journey.step("create an article and save a draft"):
        _start_article(journey, SHOP, title=title, text=text)
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_text(f"Page '{title}' created.")).to_be_visible()

    go_live = timezone.now() + dt.timedelta(seconds=SCHEDULE_LEAD_SECONDS)
    go_live_value = timezone.localtime(go_live).strftime("%Y-%m-%d %H:%M:%S")
    with journey.step("set its go-live time a few seconds ahead"):
        page.get_by_role("button", name="Toggle status").click()
        page.get_by_role("button", name="Set schedule").click()
        dialog = page.get_by_role("dialog", name="Set publishing schedule")
        # The date picker offers whole minutes and the saved form shows them again
        # without seconds; the form field itself takes seconds, so the value is set
        # on the field (here and once more before publishing).
        _set_value(dialog.get_by_label("Go live date/time"), go_live_value)
        dialog.get_by_role("button", name="Save schedule").click()
        expect(page.get_by_text("Once scheduled:")).to_be_visible()

    with journey.step("publish: the worker schedules the article, not live"):
        _set_value(page.locator("#id_go_live_at"), go_live_value)
        _publish(journey, action="Schedule to publish")
        expect(
            page.get_by_text(f"“{title}” is saved and queued for publishing.")
        ).to_be_visible()
        expect(page.locator("#cms-publish-status")).to_contain_text(
            "goes live at its scheduled time"
        )
        assert timezone.now() < go_live, (
            "publishing took longer than the schedule's lead time; the article went "
            "live at once, so this run proves nothing about scheduling"
        )

    visitor = journey.new_page()
    article_url = journey.url(SHOP, f"/{_slug(title)}/")
    with journey.step("a visitor does not see it yet", page=visitor):
        response = visitor.goto(article_url)
        assert response.status == 404, (
            f"expected 404 before go-live, got {response.status}"
        )

    with journey.step("the scheduled sweep on the Celery worker makes it live"):
        time.sleep(max(0.0, (go_live - timezone.now()).total_seconds()) + 0.5)
        sweep_scheduled_publishing_task.delay()
        deadline = time.monotonic() + GO_LIVE_TIMEOUT_SECONDS
        status = None
        while time.monotonic() < deadline:
            status = visitor.goto(article_url).status
            if status == 200:
                break
            visitor.wait_for_timeout(500)
        assert status == 200, (
            f"the article was not live {GO_LIVE_TIMEOUT_SECONDS} s after the sweep "
            f"(last status {status}); see the worker log {celery_worker}"
        )

    with journey.step("the visitor sees the article", page=visitor):
        visitor.goto(article_url)
        expect(visitor.get_by_role("heading", name=title)).to_be_visible()
        expect(visitor.get_by_text(text)).to_be_visible()


def test_editor_credentials_do_not_work_on_another_tenants_admin(journey):
    page = journey.page

    with journey.step("the editor's credentials work at their own tenant"):
        log_in(journey, SHOP)

    other = journey.new_page()
    with journey.step("the same credentials at the other tenant's admin", page=other):
        other.goto(journey.url(OTHER, "/admin/login/"))
        other.get_by_label("Username").fill(EDITOR)
        other.get_by_label("Password").fill(SHOP.editor_password)
        other.get_by_role("button", name="Sign in").click()

    with journey.step("are refused: error shown, still on the login page", page=other):
        expect(
            other.get_by_text("Your username and password didn't match")
        ).to_be_visible()
        expect(other).to_have_url(re.compile(r"/admin/login/"))
        expect(other.get_by_label("Password")).to_be_visible()
        other.goto(journey.url(OTHER, "/admin/"))
        expect(other).to_have_url(re.compile(r"/admin/login/"))
    assert page.url.startswith(journey.url(SHOP, "/admin/"))


def test_visitor_over_the_plan_limit_sees_the_friendly_429_page(
    journey, django_db_blocker
):
    from tenants.registry.selectors import plan_get
    from tenants.tariffs.plans import plan_update

    visitor = journey.page
    with orm_access(django_db_blocker):
        previous = plan_get(SHOP_PLAN).public_reads_per_minute
        plan_update(name=SHOP_PLAN, limits={"public_reads_per_minute": 3})
    try:
        with journey.step("a visitor reloads the site past the plan's limit"):
            status = None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status = visitor.goto(journey.url(SHOP)).status
                if status == 429:
                    break
            assert status == 429, f"no 429 within 15 s of reloads (last {status})"

        with journey.step("and sees the friendly 429 page"):
            expect(
                visitor.get_by_role("heading", name="This site is very busy right now")
            ).to_be_visible()
            expect(
                visitor.get_by_text("more visits in the last minute")
            ).to_be_visible()
            expect(
                visitor.get_by_text(re.compile(r"try again in \d+ seconds?"))
            ).to_be_visible()
    finally:
        with orm_access(django_db_blocker):
            plan_update(name=SHOP_PLAN, limits={"public_reads_per_minute": previous})


def test_tenant_usage_page_shows_the_tenants_own_numbers(journey, celery_worker):
    from tenants.tasks import flush_usage_task

    page = journey.page
    visitor = journey.new_page()

    with journey.step("a visitor reads the public site three times", page=visitor):
        for _ in range(3):
            assert visitor.goto(journey.url(SHOP)).status == 200

    with journey.step("editor logs in and opens Usage"):
        log_in(journey, SHOP)
        page.get_by_role("link", name="Usage", exact=True).click()
        expect(page.get_by_role("heading", name="Usage")).to_be_visible()

    with journey.step("after the worker's usage flush the page shows the reads"):
        flush_usage_task.delay()
        reads = page.locator("tr", has_text="Public page reads").locator("td.used")
        deadline = time.monotonic() + 30
        while int(reads.inner_text().replace(",", "")) < 3:
            assert time.monotonic() < deadline, (
                "the Usage page showed fewer than 3 public reads 30 s after the "
                f"usage flush was queued; see the worker log {celery_worker}"
            )
            page.wait_for_timeout(500)
            page.reload()

    with journey.step("the numbers and the chart are the tenant's own"):
        expect(page.get_by_text("E2E Shop on plan E2E shop")).to_be_visible()
        chart = page.locator("svg.usage-chart")
        expect(chart).to_be_visible()
        today = timezone.now().date().isoformat()
        expect(chart.locator("title", has_text=today)).to_have_count(1)
        assert re.search(
            rf"{today}: [1-9][\d,]* requests",
            chart.locator("title", has_text=today).text_content(),
        )


def _set_value(field, value: str) -> None:
    field.evaluate("(input, value) => { input.value = value; }", value)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
