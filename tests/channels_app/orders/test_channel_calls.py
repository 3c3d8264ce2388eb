"""Calls to an order's channel (report a shipment, cancel an oversold order):
sent after commit, retried with backoff, dead-lettered with an alert, re-drivable."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from channels_app import dispatch
from channels_app.connectors.base import ItemResult, OrderLineData
from channels_app.connectors.errors import FailureKind, RetryableError
from channels_app.models import ChannelOrder, OrderChannelCall
from channels_app.orders.apply import order_apply, order_mark_shipped
from channels_app.orders.on_channel import (
    order_channel_call_run,
    order_channel_calls_retry,
    order_channel_calls_sweep,
)
from synclog.models import Alert, SyncLogEntry
from tests.support.orders import order_data

pytestmark = pytest.mark.django_db


class Channel:
    """The connector of the order's channel, answering from a script of results
    (the last one repeats); each call is recorded."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def _answer(self, external_id):
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return ItemResult(external_id, *answer)

    def fulfil_order(self, external_id, *, tracking_number="", carrier=""):
        self.calls.append(("fulfil", external_id, tracking_number, carrier))
        return self._answer(external_id)

    def cancel_order(self, external_id, *, reason=""):
        self.calls.append(("cancel", external_id, reason))
        return self._answer(external_id)


OK = (FailureKind.OK,)
BUSY = (FailureKind.RETRYABLE, "503", "Service Unavailable")
GONE = (FailureKind.PERMANENT, "404", "no such order")


@pytest.fixture
def channel_says(monkeypatch):
    def install(*answers) -> Channel:
        channel = Channel(*answers)
        monkeypatch.setattr("channels_app.orders.on_channel.channel_connector", lambda c: channel)
        return channel

    return install


@pytest.fixture
def shipped(stocked_channel, django_capture_on_commit_callbacks, task_sends, settings):
    """A paid order marked shipped with tracking: its fulfil call, as sent."""
    settings.PIMSYNC_ORDER_CALL_RETRY_BASE_SECONDS = 30
    settings.PIMSYNC_ORDER_CALL_MAX_ATTEMPTS = 3
    order_apply(channel=stocked_channel, data=order_data("paid", 1), source="webhook")
    with django_capture_on_commit_callbacks(execute=True):
        order_mark_shipped(order=ChannelOrder.objects.get(), tracking_number="1Z9", carrier="UPS")
    return OrderChannelCall.objects.get()


def due_later(call: OrderChannelCall) -> float:
    call.refresh_from_db()
    return (call.next_attempt_at - timezone.now()).total_seconds()


def test_a_shipment_report_is_a_call_row_sent_after_commit(shipped, task_sends, channel_says):
    channel = channel_says(OK)

    assert (shipped.kind, shipped.status, shipped.payload) == (
        "fulfil",
        "pending",
        {"tracking_number": "1Z9", "carrier": "UPS"},
    )
    assert task_sends.args_of(dispatch.ORDER_CALLS) == [[[shipped.pk]]]
    assert order_channel_call_run(shipped.pk) == "done"
    assert order_channel_call_run(shipped.pk) is None  # confirmed: never made again
    assert channel.calls == [("fulfil", "1001", "1Z9", "UPS")]
    shipped.refresh_from_db()
    assert (shipped.status, shipped.attempts, shipped.last_error) == ("done", 1, "")


def test_a_retryable_failure_is_retried_after_its_backoff_until_it_gets_through(
    shipped, channel_says, task_sends
):
    channel = channel_says(BUSY, RetryableError("read timed out", code="timeout"), OK)

    assert order_channel_call_run(shipped.pk) == "pending"
    assert 15 <= due_later(shipped) <= 30  # retry 1: 30 s with equal jitter
    assert order_channel_call_run(shipped.pk) is None  # not due yet
    assert order_channel_calls_sweep() == 0

    later = timezone.now() + timedelta(seconds=31)
    task_sends.clear()
    assert order_channel_calls_sweep(now=later) == 1
    assert task_sends.args_of(dispatch.ORDER_CALLS) == [[[shipped.pk]]]
    assert order_channel_call_run(shipped.pk, now=later) == "pending"
    assert order_channel_call_run(shipped.pk, now=later + timedelta(seconds=61)) == "done"

    assert len(channel.calls) == 3
    log = SyncLogEntry.objects.filter(event_type="order").order_by("pk")
    assert list(log.values_list("status", "error_code", "retry_count")) == [
        ("failed", "503", 0),
        ("failed", "timeout", 1),
        ("success", "", 2),
    ]
    assert not Alert.objects.exists()


def test_the_channels_retry_after_is_a_floor(shipped, channel_says):
    channel_says((FailureKind.RETRYABLE, "429", "slow down", 600.0))

    order_channel_call_run(shipped.pk)

    assert 595 <= due_later(shipped) <= 600


def test_after_its_last_attempt_a_call_is_dead_and_alerted(shipped, channel_says):
    channel_says(BUSY)
    moment = timezone.now()

    outcomes = []
    for _ in range(4):
        outcomes.append(order_channel_call_run(shipped.pk, now=moment))
        moment += timedelta(hours=2)

    assert outcomes == ["pending", "pending", "dead", None]
    shipped.refresh_from_db()
    assert (shipped.status, shipped.attempts, shipped.last_error) == (
        "dead",
        3,
        "503 Service Unavailable",
    )
    alert = Alert.objects.get(kind="repeated_failure")
    assert (alert.channel_id, alert.sku) == (shipped.order.channel_id, "SKU-A")
    assert "shipped failed after 3 attempt(s)" in alert.message
    assert order_channel_calls_sweep(now=moment + timedelta(days=1)) == 0


def test_a_refusal_is_dead_at_once(shipped, channel_says):
    channel_says(GONE)

    assert order_channel_call_run(shipped.pk) == "dead"
    assert Alert.objects.get(kind="repeated_failure").count == 1


def test_an_unexpected_error_is_retried(shipped, channel_says):
    channel_says(RuntimeError("bug in a connector"), OK)

    assert order_channel_call_run(shipped.pk) == "pending"
    shipped.refresh_from_db()
    assert shipped.last_error == "connector_error bug in a connector"


def test_a_dead_call_is_re_driven_and_its_alert_resolves_when_it_gets_through(
    shipped, channel_says, django_capture_on_commit_callbacks, task_sends
):
    channel_says(GONE, OK)
    order_channel_call_run(shipped.pk)
    task_sends.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert order_channel_calls_retry(calls=OrderChannelCall.objects.all()) == 1

    assert task_sends.args_of(dispatch.ORDER_CALLS) == [[[shipped.pk]]]
    assert order_channel_call_run(shipped.pk) == "done"
    assert Alert.objects.get(kind="repeated_failure").resolved_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert order_channel_calls_retry(calls=OrderChannelCall.objects.all()) == 0


def test_a_call_being_made_is_not_made_again_meanwhile(shipped, monkeypatch):
    moment = timezone.now()
    meanwhile: list[str | None] = []

    class Slow(Channel):
        def fulfil_order(self, external_id, **kwargs):
            # Another worker (the sweeper's task, a repeat) tries while this call runs.
            meanwhile.append(order_channel_call_run(shipped.pk, now=moment))
            return ItemResult(external_id, FailureKind.OK)

    monkeypatch.setattr("channels_app.orders.on_channel.channel_connector", lambda c: Slow(OK))

    assert order_channel_call_run(shipped.pk, now=moment) == "done"
    assert meanwhile == [None]


def test_a_killed_workers_call_is_swept_when_its_lease_ends(shipped, settings):
    settings.PIMSYNC_ORDER_CALL_LEASE_SECONDS = 120
    moment = timezone.now()
    OrderChannelCall.objects.filter(pk=shipped.pk).update(
        attempts=1, next_attempt_at=moment + timedelta(seconds=120)
    )  # what a worker killed during the call leaves behind

    assert order_channel_calls_sweep(now=moment + timedelta(seconds=60)) == 0
    assert order_channel_calls_sweep(now=moment + timedelta(seconds=121)) == 1


def test_a_batch_of_oversold_orders_asks_for_their_cancels_in_a_few_tasks(
    stocked_channel, django_capture_on_commit_callbacks, task_sends
):
    from channels_app.orders.events import inbound_events_apply
    from tests.support.orders import stored_poll_event

    stocked_channel.cancel_oversold_orders = True
    stocked_channel.save()
    line = [OrderLineData("L1", "SKU-A", 1, Decimal("1"))]
    events = [
        stored_poll_event(stocked_channel, order_data("paid", 1, external_id=f"O{n}", lines=line))
        for n in range(68)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        inbound_events_apply(event_ids=[e.pk for e in events])

    payloads = list(
        OrderChannelCall.objects.filter(kind="cancel").values_list("payload", flat=True)
    )
    assert payloads == [{"reason": "oversold"}] * 60
    sent = [ids for [ids] in task_sends.args_of(dispatch.ORDER_CALLS)]
    assert [len(ids) for ids in sent] == [50, 10]


# --- admin and API -----------------------------------------------------------------------------


def test_the_order_page_shows_its_calls_and_the_list_flags_failed_ones(
    shipped, admin_client, channel_says
):
    channel_says(GONE)
    order_channel_call_run(shipped.pk)

    page = admin_client.get(
        reverse("admin:channels_app_channelorder_change", args=[shipped.order_id])
    )
    listing = admin_client.get(reverse("admin:channels_app_channelorder_changelist"))

    assert "Calls to the channel" in page.content.decode()
    assert "404 no such order" in page.content.decode()
    assert "channel call failed" in listing.content.decode()


def test_the_order_and_call_lists_make_the_same_queries_for_many_rows(
    stocked_channel, admin_client, channel_says
):
    channel_says(GONE)

    def one_more(n: int) -> None:
        result = order_apply(
            channel=stocked_channel,
            data=order_data("cancelled", 1, external_id=f"Q{n}"),
            source="webhook",
        )
        OrderChannelCall.objects.create(
            order=result.order, kind="cancel", status="dead", next_attempt_at=timezone.now()
        )

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    urls = [
        reverse("admin:channels_app_channelorder_changelist"),
        reverse("admin:channels_app_orderchannelcall_changelist"),
    ]
    one_more(0)
    few = [queries(url) for url in urls]
    for n in range(1, 12):
        one_more(n)
    assert [queries(url) for url in urls] == few


def test_admin_retry_on_channel_confirms_then_re_drives(
    shipped, admin_client, channel_says, django_capture_on_commit_callbacks, task_sends
):
    channel_says(GONE)
    order_channel_call_run(shipped.pk)
    url = reverse("admin:channels_app_orderchannelcall_changelist")
    selection = {"action": "retry_on_channel_action", "_selected_action": [shipped.pk]}

    asked = admin_client.post(url, selection)
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(url, {**selection, "confirm": "yes"}, follow=True)

    assert "Retry on channel" in asked.content.decode()
    assert [str(m) for m in done.context["messages"]] == [
        "Sending 1 call(s) to the channels again."
    ]
    shipped.refresh_from_db()
    assert (shipped.status, shipped.attempts) == ("pending", 0)


def test_admin_retry_on_channel_from_the_order_list(
    shipped, admin_client, channel_says, django_capture_on_commit_callbacks
):
    channel_says(GONE)
    order_channel_call_run(shipped.pk)
    url = reverse("admin:channels_app_channelorder_changelist")
    selection = {"action": "retry_on_channel_action", "_selected_action": [shipped.order_id]}

    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(url, {**selection, "confirm": "yes"}, follow=True)

    assert [str(m) for m in done.context["messages"]] == [
        "Sending 1 call(s) to the channels again."
    ]
    assert OrderChannelCall.objects.get().status == "pending"


def test_api_retry_on_channel(shipped, channel_says, admin_user):
    from rest_framework.test import APIClient

    client_for_staff = APIClient()
    client_for_staff.force_authenticate(admin_user)
    channel_says(GONE)
    order_channel_call_run(shipped.pk)

    first = client_for_staff.post(f"/api/v1/orders/{shipped.order_id}/retry-on-channel/")
    again = client_for_staff.post(f"/api/v1/orders/{shipped.order_id}/retry-on-channel/")

    assert (first.status_code, first.json()["calls_retried"]) == (200, 1)
    [call] = first.json()["order"]["channel_calls"]
    assert (call["kind"], call["status"], call["attempts"]) == ("fulfil", "pending", 0)
    assert again.json()["calls_retried"] == 1  # still not through: pending calls go again too
