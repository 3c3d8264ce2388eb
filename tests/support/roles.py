"""The API's role names as the tests address them."""

from pimsync.api.roles import ROLES

ROLE_NAMES = ("anonymous", "none", *ROLES, "staff")
