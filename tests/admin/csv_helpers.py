"""Shared steps of the CSV import/export admin tests."""

from __future__ import annotations

import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory.models import CsvImport


def url(model: str, name: str, *args: object) -> str:
    return reverse(f"admin:inventory_{model}_{name}", args=args)


def upload(client, model: str, content: str | bytes, name: str = "file.csv"):
    data = content.encode("utf-8") if isinstance(content, str) else content
    return client.post(
        url(model, "csv_import"), {"file": SimpleUploadedFile(name, data, "text/csv")}
    )


def preview_of(client, model: str, content: str | bytes, name: str = "file.csv"):
    """Upload a clean file and follow to its preview page: (record, preview response)."""
    response = upload(client, model, content, name)
    assert response.status_code == 302, _errors(response)
    record = CsvImport.objects.get(pk=response.url.rstrip("/").rsplit("/", 1)[-1])
    return record, client.get(response.url)


def import_queries(client, model: str, content: str) -> tuple[int, int]:
    """Queries of uploading a clean file and of showing its preview."""
    with CaptureQueriesContext(connection) as upload_ctx:
        response = upload(client, model, content)
    assert response.status_code == 302, _errors(response)
    with CaptureQueriesContext(connection) as preview_ctx:
        assert client.get(response.url).status_code == 200
    return len(upload_ctx.captured_queries), len(preview_ctx.captured_queries)


def confirm(client, model: str, record: CsvImport):
    return client.post(url(model, "csv_preview", record.pk), follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def export_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def row_errors(response) -> list[tuple[int, str, str]]:
    return [(e.row, e.sku, e.message) for e in response.context["preview"].errors]


def _errors(response) -> object:
    context = response.context
    if context is None:
        return response
    form = context.get("form")
    preview = context.get("preview")
    return (form.errors if form else None, preview.errors if preview else None)
