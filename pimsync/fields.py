"""Model fields that store their value encrypted (see pimsync.crypto)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.db import models

from . import crypto


class EncryptedTextField(models.TextField):
    """A string stored as a Fernet token; reads give the plaintext back."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str:
        if not value:
            return ""
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> str:
        if value in (None, ""):
            return ""
        return crypto.encrypt(str(value))


if TYPE_CHECKING:
    # What the field holds in Python (a dict), not the text it stores.
    _JSONInText = models.TextField[dict[str, Any], dict[str, Any]]
else:
    _JSONInText = models.TextField


class EncryptedJSONField(_JSONInText):
    """A JSON object stored as one Fernet token."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> dict:
        if not value:
            return {}
        return json.loads(crypto.decrypt(value))

    def to_python(self, value: Any) -> dict:
        if isinstance(value, dict):
            return value
        if not value:
            return {}
        return json.loads(value)

    def get_prep_value(self, value: Any) -> str:
        if not value:
            return ""
        return crypto.encrypt(json.dumps(value, sort_keys=True))
