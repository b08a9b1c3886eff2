"""Admin upload views wrapped in the plan's upload size and storage quota.

Wagtail has no "before upload" hook for images and documents, so the tenant URLconf
routes the add views through this check first.
"""

import functools
from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from tenants.tariffs.quotas import QuotaExceeded, check_storage, check_upload_sizes


def storage_checked(view: Callable, index_url_name: str) -> Callable:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST" and request.FILES:
            sizes = [upload.size for upload in request.FILES.values()]
            try:
                check_upload_sizes(request.tenant, sizes)
                check_storage(request.tenant, sum(sizes))
            except QuotaExceeded as exc:
                if request.headers.get("X-Requested-With") == "XMLHttpRequest":
                    return JsonResponse(
                        {"success": False, "error_message": str(exc)}, status=400
                    )
                messages.error(request, str(exc))
                return redirect(index_url_name)
        return view(request, *args, **kwargs)

    return wrapper
