"""The API's role names as the tests address them."""

from inventory.roles import ROLES

ROLE_NAMES = ("anonymous", "none", *ROLES, "staff")
