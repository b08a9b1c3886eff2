"""Every path answers a short text (the benchmark's ceiling)."""

from django.http import HttpRequest, HttpResponse
from django.urls import re_path


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from a plain Django view.\n", content_type="text/plain")


urlpatterns = [re_path(r"", hello)]
