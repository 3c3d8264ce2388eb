"""Reconciliation runs over the API: start one (202), busy channel (409), findings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from synclog.models import DriftFinding, ReconciliationRun

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/reconciliation-runs/"


def test_ops_starts_a_run_of_the_whole_channel_and_its_task_is_queued(
    catalog, client_for, django_capture_on_commit_callbacks
) -> None:
    channel = catalog["channel"]
    with (
        mock.patch("channels_app.services._reconcile_enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client_for("ops").post(RUNS, {"channel": channel.pk}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "running"
    assert body["trigger"] == "api"
    assert body["total"] == 3
    assert body["requested_by"] == "u-ops"
    run = ReconciliationRun.objects.get(pk=body["id"])
    enqueue.assert_called_once_with(channel.pk, "api", run.pk, None)


def test_a_sku_subset_checks_only_those_listings(catalog, client_for) -> None:
    channel = catalog["channel"]
    response = client_for("ops").post(
        RUNS, {"channel": channel.pk, "skus": ["TEE-S", "TEE-L"]}, format="json"
    )

    assert response.status_code == 202, response.content
    assert response.json()["total"] == 2


def test_a_channel_already_reconciling_answers_409_and_opens_no_second_run(
    catalog, client_for
) -> None:
    api = client_for("ops")
    first = api.post(RUNS, {"channel": catalog["channel"].pk}, format="json")
    second = api.post(RUNS, {"channel": catalog["channel"].pk}, format="json")

    assert first.status_code == 202
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "reconcile_busy"
    assert "still running" in second.json()["error"]["message"]
    assert ReconciliationRun.objects.count() == 1


def test_an_unlisted_sku_is_refused_and_starts_nothing(catalog, client_for) -> None:
    response = client_for("ops").post(
        RUNS, {"channel": catalog["channel"].pk, "skus": ["TEE-S", "NOPE-1"]}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "not_listed"
    assert error["details"]["skus"] == ["NOPE-1"]
    assert not ReconciliationRun.objects.exists()


def test_a_disabled_channel_cannot_be_reconciled(catalog, client_for) -> None:
    channel = catalog["channel"]
    channel.is_enabled = False
    channel.save(update_fields=["is_enabled"])

    response = client_for("ops").post(RUNS, {"channel": channel.pk}, format="json")

    assert response.status_code == 400
    assert not ReconciliationRun.objects.exists()


def test_runs_and_their_findings_read_back_with_progress(catalog, client_for) -> None:
    channel = catalog["channel"]
    now = timezone.now()
    run = ReconciliationRun.objects.create(
        channel=channel,
        trigger="scheduled",
        status="finished",
        started_at=now - timedelta(seconds=30),
        finished_at=now,
        total=3,
        checked=3,
        drifted=1,
        resynced=1,
        fixed=1,
    )
    DriftFinding.objects.create(
        run=run,
        channel=channel,
        listing_id=1,
        sku="TEE-S",
        field="quantity",
        expected=Decimal("10"),
        found=Decimal("14"),
        difference=Decimal("4"),
        beyond_threshold=True,
        resync_requested=True,
        found_at=now,
        read_back_value=Decimal("10"),
        read_back_at=now,
        resolved_at=now,
    )
    api = client_for("ops")

    listed = api.get(RUNS, {"channel": channel.pk, "status": "finished"}).json()
    detail = api.get(f"{RUNS}{run.pk}/").json()
    findings = api.get(f"{RUNS}{run.pk}/findings/").json()

    assert [r["id"] for r in listed["results"]] == [run.pk]
    assert detail["duration_seconds"] == pytest.approx(30.0)
    assert (detail["checked"], detail["drifted"], detail["fixed"]) == (3, 1, 1)
    [finding] = findings["results"]
    assert finding["sku"] == "TEE-S"
    assert (finding["expected"], finding["found"], finding["difference"]) == (
        "10.00",
        "14.00",
        "4.00",
    )
    assert finding["resolved_at"] is not None


@pytest.mark.parametrize("role", ["merchandiser", "integrator", "none"])
def test_merchandisers_and_integrators_cannot_start_a_run(role, catalog, client_for) -> None:
    response = client_for(role).post(RUNS, {"channel": catalog["channel"].pk}, format="json")
    assert response.status_code == 403, role
    assert not ReconciliationRun.objects.exists()


def test_started_after_takes_any_offset_as_the_same_instant(catalog, client_for) -> None:
    run = ReconciliationRun.objects.create(
        channel=catalog["channel"],
        trigger="manual",
        status="finished",
        started_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
    )
    api = client_for("ops")

    def found(after: str) -> list[int]:
        return [r["id"] for r in api.get(RUNS, {"started_after": after}).json()["results"]]

    assert found("2026-11-23T14:30:00+05:00") == [run.pk]  # 09:30 UTC
    assert found("2026-11-23T06:30:00-04:00") == []  # 10:30 UTC
    assert found("2026-11-23T10:00:01Z") == []
