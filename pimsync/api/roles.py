"""API and admin roles: Django groups with the model permissions each role needs.

The groups are created by a data migration and kept current by ``roles_sync``
(also run by ``manage.py api_roles`` and the demo seed). What each role may do
through the REST API is decided by pimsync.api.permissions from the group
names below; the model permissions make the same people useful in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MERCHANDISER = "merchandiser"
INTEGRATOR = "integrator"
OPS = "ops"
ROLES = (MERCHANDISER, INTEGRATOR, OPS)

_CATALOG_READ = [
    "inventory.view_product",
    "inventory.view_variant",
    "inventory.view_location",
    "inventory.view_stocklevel",
]
_CHANNELS_READ = ["channels_app.view_channel", "channels_app.view_channellisting"]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    # Catalog and prices, and how prices and stock are presented per channel.
    MERCHANDISER: [
        *_CATALOG_READ,
        *_CHANNELS_READ,
        *(
            f"inventory.{a}_{m}"
            for m in ("product", "variant")
            for a in ("add", "change", "delete")
        ),
        "channels_app.add_channellisting",
        "channels_app.change_channellisting",
        # Bringing a store in: import its catalog, review and link it, listings as CSV.
        "channels_app.view_catalogimport",
        "channels_app.add_catalogimport",
        "channels_app.view_catalogimportitem",
        "channels_app.change_catalogimportitem",
        "channels_app.view_listingcsvimport",
        "channels_app.add_listingcsvimport",
        "inventory.view_csvimport",
        "inventory.add_csvimport",
        *(
            f"channels_app.{a}_{m}"
            for m in ("bufferrule", "pricerule")
            for a in ("view", "add", "change", "delete")
        ),
    ],
    # Stock in and out (ERP/WMS), orders; the catalog read-only.
    INTEGRATOR: [
        *_CATALOG_READ,
        *_CHANNELS_READ,
        "inventory.view_stockmovement",
        "inventory.add_stockmovement",
        "inventory.view_reservation",
        "inventory.add_reservation",
        "inventory.change_reservation",
        "channels_app.view_channelorder",
        "channels_app.change_channelorder",
        "channels_app.view_channelorderline",
        "channels_app.view_customer",
    ],
    # Watching and repairing sync: log, alerts, reconciliation, resync.
    OPS: [
        *_CATALOG_READ,
        *_CHANNELS_READ,
        "inventory.view_stockmovement",
        "channels_app.view_syncmarker",
        "channels_app.change_syncmarker",
        "channels_app.view_inboundevent",
        "channels_app.view_channelorder",
        "channels_app.view_customer",
        "synclog.view_synclogentry",
        "synclog.view_alert",
        "synclog.change_alert",
        "synclog.view_channelhealthsnapshot",
        "synclog.view_ops_dashboard",
        "synclog.view_reconciliationrun",
        "synclog.add_reconciliationrun",
        "synclog.view_driftfinding",
        "synclog.view_incident",
        "synclog.change_incident",
        "synclog.view_notification",
        "synclog.change_notification",
        "channels_app.view_channelalertsettings",
        "channels_app.change_channelalertsettings",
    ],
}


@dataclass(frozen=True)
class RoleSync:
    role: str
    permissions: int
    missing: tuple[str, ...]


def roles_sync(*, apps: Any = None) -> list[RoleSync]:
    """Create the role groups and set exactly their permissions; idempotent.

    ``apps`` is a migration's app registry (historical models) or None for the
    live one. Permissions of models that do not exist (yet) are skipped and
    reported, so a later migrate + sync adds them.
    """
    if apps is None:
        from django.apps import apps as live_apps

        apps = live_apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    wanted = {p for perms in ROLE_PERMISSIONS.values() for p in perms}
    by_label = {}
    for perm in permission_model.objects.filter(
        codename__in={p.split(".", 1)[1] for p in wanted}
    ).select_related("content_type"):
        by_label[f"{perm.content_type.app_label}.{perm.codename}"] = perm
    report = []
    for role, labels in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        found = [by_label[label] for label in labels if label in by_label]
        group.permissions.set(found)
        report.append(
            RoleSync(
                role=role,
                permissions=len(found),
                missing=tuple(label for label in labels if label not in by_label),
            )
        )
    return report


def user_roles_set(*, user: Any, roles: list[str]) -> None:
    """Make ``user`` a member of exactly these role groups (other groups are kept)."""
    from django.contrib.auth.models import Group

    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"Unknown role(s): {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    groups = {g.name: g for g in Group.objects.filter(name__in=ROLES)}
    if set(roles) - set(groups):  # a database migrated without the roles migration
        roles_sync()
        groups = {g.name: g for g in Group.objects.filter(name__in=ROLES)}
    user.groups.remove(*(g for name, g in groups.items() if name not in roles))
    user.groups.add(*(groups[name] for name in roles))


def user_api_token(*, user: Any, rotate: bool = False) -> str:
    """The user's API token, created on first use; ``rotate`` replaces it."""
    from rest_framework.authtoken.models import Token

    if rotate:
        Token.objects.filter(user=user).delete()
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
