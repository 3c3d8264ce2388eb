from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    verbose_name = "Sales channels"

    def ready(self) -> None:
        from inventory import events
        from synclog.decisions import drift_decider_register

        from .sync import edits, markers

        # The one subscription to inventory's domain event (design §1): markers
        # are written in the writing transaction.
        events.stock_changed.connect(markers.on_stock_changed, dispatch_uid="channels.stock")
        events.price_changed.connect(markers.on_price_changed, dispatch_uid="channels.price")
        events.sellable_changed.connect(
            markers.on_sellable_changed, dispatch_uid="channels.sellable"
        )
        # A person's choice on a flagged channel-side edit (offered by synclog's admin)
        # is carried out here: synclog never imports channels_app.
        drift_decider_register(edits.edit_findings_choose)
