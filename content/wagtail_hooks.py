"""Admin wiring: URLs and menu entries of the content app."""

from django.urls import path
from wagtail import hooks

from content.views import publish_in_background


@hooks.register("register_admin_urls")
def register_publishing_urls():
    return [
        path(
            "content/publish-in-background/<int:page_id>/",
            publish_in_background,
            name="content_publish_in_background",
        ),
    ]
