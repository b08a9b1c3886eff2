"""Wagtail's image and document forms with the plan's upload checks.

Every admin door that stores a file builds its form from these bases (settings
``WAGTAILIMAGES_IMAGE_FORM_BASE`` / ``WAGTAILDOCS_DOCUMENT_FORM_BASE``): the add view,
the multiple upload, the choosers' upload tab and the edit view replacing a file. So
the plan's per-file size and storage quota (tenants.tariffs.quotas.check_upload) are
checked in one place, before anything is written, and a refusal is an error on the
file field that each of those views already knows how to show.
"""

from django import forms
from wagtail.documents.forms import BaseDocumentForm
from wagtail.images.forms import BaseImageForm

from tenants.tariffs.quotas import QuotaExceeded, active_tenant, check_upload


class PlanCheckedUploadMixin:
    """``clean_file`` for a ModelForm of a model with ``file`` and ``file_size``."""

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if upload is None or "file" not in self.changed_data:
            return upload  # no new file: nothing is stored
        tenant = active_tenant()
        if tenant is None:  # the public schema stores no uploads
            return upload
        replacing = (self.instance.file_size or 0) if self.instance.pk else 0
        try:
            check_upload(tenant, size=upload.size, replacing=replacing)
        except QuotaExceeded as exc:
            raise forms.ValidationError(str(exc), code="quota") from exc
        return upload


class PlanCheckedImageForm(PlanCheckedUploadMixin, BaseImageForm):
    pass


class PlanCheckedDocumentForm(PlanCheckedUploadMixin, BaseDocumentForm):
    pass
