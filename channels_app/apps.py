from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    verbose_name = "Sales channels"

    def ready(self) -> None:
        from inventory import events

        from .sync import markers

        # The one subscription to inventory's domain event (design §1): markers
        # are written in the writing transaction.
        events.stock_changed.connect(markers.on_stock_changed, dispatch_uid="channels.stock")
        events.price_changed.connect(markers.on_price_changed, dispatch_uid="channels.price")
        events.sellable_changed.connect(
            markers.on_sellable_changed, dispatch_uid="channels.sellable"
        )
        events.content_changed.connect(markers.on_content_changed, dispatch_uid="channels.content")
