"""schemathesis against the live OpenAPI document, every operation, as staff and as a
user without a role: no answer is a 5xx, and every answer (status, content type,
body, headers) is what the schema says. Example counts stay modest so the suite
stays quick; the role and idempotency tests cover the meaning of the answers."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pimsync.api.roles import user_api_token

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    """Calling the WSGI handler directly would close the database connection at the end
    of every request (and with it the test's transaction on PostgreSQL); Django's test
    client avoids that the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(params=["staff", "none"])
def api_token(request, catalog, make_user) -> str:
    return user_api_token(user=make_user(request.param))


def _served_schema() -> dict:
    """The document /api/schema/ serves, generated the same way the view does it (the
    lazy fixture loader of schemathesis does not run on this pytest; the test below
    checks that the live endpoint serves exactly this document)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


SERVED = _served_schema()
schema = schemathesis.openapi.from_dict(SERVED)
# The coverage phase enumerates every boundary of every field (hundreds of requests per
# operation); the fuzzing phase with a few examples, positive and negative, keeps the
# run to a couple of minutes.
schema.config.phases.coverage.enabled = False
APP = get_wsgi_application()


@pytest.mark.django_db
def test_the_live_endpoint_serves_this_schema(client_for) -> None:
    response = client_for("none").get("/api/schema/?format=json")
    assert response.status_code == 200
    assert json.loads(response.content) == SERVED


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, api_token) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {api_token}"}, checks=CHECKS, app=APP)
