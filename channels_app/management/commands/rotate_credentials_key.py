"""Re-encrypt every stored channel secret with the current first Fernet key.

Rotation: prepend the new key to PIMSYNC_FERNET_KEYS (new,old), run this
command, then remove the old key. Reads work throughout because every listed
key decrypts.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from channels_app.models import Channel


class Command(BaseCommand):
    help = "Re-encrypt channel credentials and webhook secrets with the newest key."

    def handle(self, *args: object, **options: object) -> None:
        count = 0
        with transaction.atomic():
            for channel in Channel.objects.select_for_update().order_by("pk"):
                # Reading decrypts with any key; saving encrypts with the first.
                channel.save(update_fields=["credentials", "webhook_secret"])
                count += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted secrets of {count} channel(s)."))
