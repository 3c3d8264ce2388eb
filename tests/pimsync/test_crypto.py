import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from channels_app.models import Channel
from pimsync import crypto

pytestmark = pytest.mark.django_db


def raw_row(channel_id: int) -> tuple[str, str]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT credentials, webhook_secret FROM channels_app_channel WHERE id = %s",
            [channel_id],
        )
        return cur.fetchone()


def test_credentials_and_secret_are_encrypted_at_rest(channel_factory):
    channel = channel_factory(
        credentials={"access_token": "shpat_PLAIN"}, webhook_secret="whsec_PLAIN"
    )
    creds_raw, secret_raw = raw_row(channel.pk)
    assert "shpat_PLAIN" not in creds_raw
    assert "whsec_PLAIN" not in secret_raw
    fresh = Channel.objects.get(pk=channel.pk)
    assert fresh.credentials == {"access_token": "shpat_PLAIN"}
    assert fresh.webhook_secret == "whsec_PLAIN"


def test_rotation_re_encrypts_with_the_new_key(channel_factory, settings):
    old_key = settings.PIMSYNC_FERNET_KEYS[0]
    channel = channel_factory(credentials={"access_token": "tok-1234567890"})
    new_key = Fernet.generate_key().decode()
    settings.PIMSYNC_FERNET_KEYS = [new_key, old_key]
    call_command("rotate_credentials_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.PIMSYNC_FERNET_KEYS = [new_key]  # old key removed: still readable
    assert Channel.objects.get(pk=channel.pk).credentials == {"access_token": "tok-1234567890"}


def test_missing_key_gives_a_clear_error(channel_factory, settings):
    channel = channel_factory()
    settings.PIMSYNC_FERNET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError, match="lacks the key"):
        Channel.objects.get(pk=channel.pk)


@pytest.mark.parametrize(
    ("secret", "shown"),
    [("", ""), ("short", "••••••••"), ("shpat_1234567890abcd", "••••••••abcd")],
)
def test_mask_shows_only_the_last_characters(secret, shown):
    assert crypto.mask(secret) == shown
