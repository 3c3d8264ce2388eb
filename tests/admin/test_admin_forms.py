"""Admin forms and actions go through services and refuse bad input with a clear message."""

from decimal import Decimal

import pytest
from django.urls import reverse

from channels_app.models import Channel
from inventory import events, services
from inventory.models import StockLevel, StockMovement, Variant
from tests.support.admin_forms import channel_form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def stocked(variant, location):
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=3,
        reason="receive",
        source="t",
        idempotency_key="seed",
    )
    return variant


def adjust_url(variant):
    return reverse("admin:inventory_variant_adjust_stock", args=[variant.pk])


def test_adjust_form_applies_one_movement_with_message(admin_client, stocked, location):
    response = admin_client.post(
        adjust_url(stocked),
        {
            "location": location.pk,
            "operation": "receive",
            "quantity": 4,
            "reason_note": "PO 1001 arrived",
            "idempotency_key": "admin:abc",
        },
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        f"Receive recorded for {stocked.sku} at Main: on hand 3 → 7, available now 7."
    ]
    movement = StockMovement.objects.get(idempotency_key="admin:abc")
    assert (movement.note, movement.source, movement.created_by.username) == (
        "PO 1001 arrived",
        "admin",
        "boss",
    )


def test_adjust_form_double_submit_applies_once(admin_client, stocked, location):
    data = {
        "location": location.pk,
        "operation": "receive",
        "quantity": 1,
        "reason_note": "x",
        "idempotency_key": "admin:double",
    }
    admin_client.post(adjust_url(stocked), data)
    admin_client.post(adjust_url(stocked), data)
    assert StockLevel.objects.get(variant=stocked, location=location).on_hand == 4


def test_adjust_form_refuses_negative_on_hand_and_changes_nothing(admin_client, stocked, location):
    response = admin_client.post(
        adjust_url(stocked),
        {
            "location": location.pk,
            "operation": "adjust",
            "quantity": -10,
            "reason_note": "shrinkage",
            "idempotency_key": "admin:neg",
        },
    )
    assert response.status_code == 200
    assert "on_hand would be -7" in response.content.decode()
    assert StockLevel.objects.get(variant=stocked, location=location).on_hand == 3
    assert StockMovement.objects.count() == 1


def test_adjust_form_requires_a_reason(admin_client, stocked, location):
    response = admin_client.post(
        adjust_url(stocked),
        {
            "location": location.pk,
            "operation": "receive",
            "quantity": 1,
            "reason_note": "  ",
            "idempotency_key": "admin:r",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["reason_note"]
    assert StockMovement.objects.count() == 1


def test_non_numeric_price_in_admin_is_refused_and_changes_nothing(admin_client, variant):
    url = reverse("admin:inventory_variant_change", args=[variant.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update({"product": variant.product_id, "price": "twelve", "options": '{"size": "M"}'})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "Enter a number." in response.content.decode()
    variant.refresh_from_db()
    assert variant.price == Decimal("20.00")


def test_price_edit_in_changelist_goes_through_the_service(admin_client, variant):
    seen = []
    events.price_changed.connect(
        handler := lambda sender, variant_ids, **kw: seen.append(variant_ids)
    )
    try:
        response = admin_client.post(
            reverse("admin:inventory_variant_changelist"),
            {
                "form-TOTAL_FORMS": 1,
                "form-INITIAL_FORMS": 1,
                "form-0-id": variant.pk,
                "form-0-price": "21.50",
                "_save": "Save",
            },
        )
    finally:
        events.price_changed.disconnect(handler)
    assert response.status_code == 302
    assert Variant.objects.get(pk=variant.pk).price == Decimal("21.50")
    assert seen == [frozenset({variant.pk})]


def test_bulk_adjust_action_confirms_then_applies(admin_client, variant_factory, location):
    variants = [variant_factory() for _ in range(3)]
    url = reverse("admin:inventory_variant_changelist")
    selection = {"action": "adjust_stock_action", "_selected_action": [v.pk for v in variants]}
    confirm_page = admin_client.post(url, selection)
    assert confirm_page.status_code == 200
    assert "Adjust stock of selected variants" in confirm_page.content.decode()
    assert StockMovement.objects.count() == 0
    done = admin_client.post(
        url,
        {
            **selection,
            "confirm": "yes",
            "location": location.pk,
            "operation": "receive",
            "quantity": 2,
            "reason_note": "restock",
            "idempotency_key": "admin:bulk",
        },
        follow=True,
    )
    assert [str(m) for m in done.context["messages"]] == ["Stock changed for 3 variant(s)."]
    assert StockMovement.objects.count() == 3


def test_channel_form_replaces_credentials_only_when_given(admin_client, channel_factory):
    channel = channel_factory(
        credentials={"access_token": "old-token-123456"}, webhook_secret="old-secret"
    )
    url = reverse("admin:channels_app_channel_change", args=[channel.pk])
    base = channel_form_data(channel)
    assert admin_client.post(url, base).status_code == 302
    channel = Channel.objects.get(pk=channel.pk)
    assert channel.credentials == {"access_token": "old-token-123456"}
    assert channel.webhook_secret == "old-secret"
    bad = admin_client.post(url, {**base, "new_credentials": "{not json"})
    assert "Not valid JSON" in bad.content.decode()
    assert (
        admin_client.post(
            url,
            {
                **base,
                "new_credentials": '{"access_token": "new-token-abcdef"}',
                "new_webhook_secret": "s2",
            },
        ).status_code
        == 302
    )
    channel = Channel.objects.get(pk=channel.pk)
    assert channel.credentials == {"access_token": "new-token-abcdef"}
    assert channel.webhook_secret == "s2"


def test_product_page_edits_variant_price_inline_through_the_service(admin_client, variant):
    seen = []
    events.price_changed.connect(
        handler := lambda sender, variant_ids, **kw: seen.append(variant_ids)
    )
    product = variant.product
    url = reverse("admin:inventory_product_change", args=[product.pk])
    data = {
        "title": product.title,
        "handle": product.handle,
        "status": "active",
        "variants-TOTAL_FORMS": 1,
        "variants-INITIAL_FORMS": 1,
        "variants-MIN_NUM_FORMS": 0,
        "variants-MAX_NUM_FORMS": 1000,
        "variants-0-id": variant.pk,
        "variants-0-product": product.pk,
        "variants-0-sku": variant.sku,
        "variants-0-options": '{"size": "M"}',
        "variants-0-price": "33.00",
        "variants-0-is_active": "on",
        # the read-only "Published on channels" inline posts its management form too
        "publications-TOTAL_FORMS": 0,
        "publications-INITIAL_FORMS": 0,
    }
    try:
        response = admin_client.post(url, data)
    finally:
        events.price_changed.disconnect(handler)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Variant.objects.get(pk=variant.pk).price == Decimal("33.00")
    assert seen == [frozenset({variant.pk})]


# --- reconciliation ---------------------------------------------------------------------------


def test_reconcile_now_confirms_then_opens_a_run_and_queues_it(
    admin_client, channel_factory, listing_factory, task_sends, django_capture_on_commit_callbacks
):
    from django.contrib.admin import helpers

    from channels_app import dispatch
    from synclog.models import ReconciliationRun

    def sent():
        return task_sends.args_of(dispatch.RECONCILE)

    channel = channel_factory(name="Woo shop")
    listing_factory.create_batch(3, channel=channel)
    url = reverse("admin:channels_app_channel_changelist")
    selection = {"action": "reconcile_now_action", helpers.ACTION_CHECKBOX_NAME: [channel.pk]}
    # when: the action is chosen, it asks first
    page = admin_client.post(url, selection)
    assert page.status_code == 200
    assert "Reads every enabled listing" in page.content.decode()
    assert not ReconciliationRun.objects.exists()
    # and on confirmation a run is opened and its task queued after commit
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(url, {**selection, "confirm": "yes"}, follow=True)
    run = ReconciliationRun.objects.get()
    assert (run.channel_id, run.trigger, run.status, run.total) == (
        channel.pk,
        "manual",
        "running",
        3,
    )
    assert run.requested_by.is_superuser
    assert sent() == [[channel.pk, "manual", run.pk, None]]
    assert f"Reconciliation #{run.pk} of Woo shop queued (3 listing(s))." in done.content.decode()
    # a second request while it runs says so instead of starting another
    done = admin_client.post(url, {**selection, "confirm": "yes"}, follow=True)
    assert "is still running" in done.content.decode()
    assert ReconciliationRun.objects.count() == 1


def test_reconcile_selected_listings_opens_one_run_per_channel(
    admin_client, channel_factory, listing_factory, task_sends, django_capture_on_commit_callbacks
):
    from django.contrib.admin import helpers

    from channels_app import dispatch
    from synclog.models import ReconciliationRun

    def sent():
        return task_sends.args_of(dispatch.RECONCILE)

    a, b = channel_factory(name="A"), channel_factory(name="B")
    picked = [*listing_factory.create_batch(2, channel=a), listing_factory(channel=b)]
    listing_factory(channel=a)  # not selected
    url = reverse("admin:channels_app_channellisting_changelist")
    selection = {
        "action": "reconcile_selected_action",
        helpers.ACTION_CHECKBOX_NAME: [lst.pk for lst in picked],
        "confirm": "yes",
    }
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, selection, follow=True)
    runs = {r.channel_id: r for r in ReconciliationRun.objects.all()}
    assert (runs[a.pk].total, runs[b.pk].total) == (2, 1)
    assert {tuple(args[3]) for args in sent()} == {
        (picked[0].pk, picked[1].pk),
        (picked[2].pk,),
    }
    assert {args[1] for args in sent()} == {"listings"}


def test_channel_page_edits_the_reconcile_interval_and_drift_thresholds(
    admin_client, channel_factory
):
    from django_celery_beat.models import PeriodicTask

    channel = channel_factory()
    url = reverse("admin:channels_app_channel_change", args=[channel.pk])
    assert "Reconciliation and drift" in admin_client.get(url).content.decode()
    data = channel_form_data(
        channel,
        returns_restock="sellable",
        reconcile_interval_minutes=60,
        drift_quantity_threshold=3,
        drift_price_amount="0.50",
        drift_price_percent="2",
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.drift_quantity_threshold, str(channel.drift_price_amount)) == (3, "0.50")
    task = PeriodicTask.objects.get(name=f"Reconcile channel {channel.pk}")
    assert task.interval.every == 60
    assert "Reconcile channel" in admin_client.get(url).content.decode()
    # a threshold of 0 units would resync nothing: refused, nothing changed
    refused = admin_client.post(url, {**data, "drift_quantity_threshold": 0})
    assert refused.status_code == 200
    channel.refresh_from_db()
    assert channel.drift_quantity_threshold == 3


def test_reconcile_now_with_the_broker_down_fails_the_run_instead_of_blocking_the_channel(
    admin_client, channel_factory, listing_factory, broker_down, django_capture_on_commit_callbacks
):
    from django.contrib.admin import helpers

    from synclog.models import ReconciliationRun

    channel = channel_factory()
    listing_factory(channel=channel)
    url = reverse("admin:channels_app_channel_changelist")
    selection = {
        "action": "reconcile_now_action",
        helpers.ACTION_CHECKBOX_NAME: [channel.pk],
        "confirm": "yes",
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(url, selection, follow=True).status_code == 200
    run = ReconciliationRun.objects.get()
    assert run.status == "failed"
    assert "Could not be queued" in run.error_message


def test_a_magento_channel_is_created_with_its_settings_checked(admin_client):
    url = reverse("admin:channels_app_channel_add")
    data = channel_form_data(
        Channel(
            name="Magento EU", slug="magento-eu", platform="magento", base_url="https://m.test"
        ),
        platform_config='{"msi": "yes", "stock_id": 0}',
    )

    refused = admin_client.post(url, data).content.decode()
    created = admin_client.post(
        url,
        {
            **data,
            "platform_config": '{"store_code": "default", "source_codes": ["default"]}',
            "new_credentials": '{"access_token": "integration-token-1"}',
        },
    )

    assert "msi: true or false" in refused
    assert "stock_id: a whole number from 1" in refused
    assert "integration access token" in refused  # no credentials given
    assert created.status_code == 302
    channel = Channel.objects.get(slug="magento-eu")
    assert (channel.platform, channel.credentials) == (
        "magento",
        {"access_token": "integration-token-1"},
    )
