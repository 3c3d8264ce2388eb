"""Encryption at rest for channel credentials and webhook secrets (Fernet).

Keys come from PIMSYNC_FERNET_KEYS (comma-separated). The first key encrypts;
every key decrypts, so a key can be rotated without downtime: put the new key
first, run `manage.py rotate_credentials_key`, then remove the old key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    pass


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise DecryptionError("PIMSYNC_FERNET_KEYS is empty")
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.PIMSYNC_FERNET_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "Cannot decrypt a stored secret: PIMSYNC_FERNET_KEYS lacks the key it was written with"
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt with the current first key."""
    return fernet().rotate(token.encode()).decode()


def mask(secret: str, *, visible: int = 4) -> str:
    """What a person may see of a secret: its length class and last characters."""
    if not secret:
        return ""
    if len(secret) <= visible * 2:
        return "•" * 8
    return "•" * 8 + secret[-visible:]
