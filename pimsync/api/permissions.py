"""Who may call what: one table from API area to the roles that may read / write it.

Every API view names its ``api_area``; ``RolePermission`` (the only permission
class the API uses) lets a request through when the user is authenticated and
is staff, or belongs to a role group listed for the area and the kind of
request (read = GET/HEAD/OPTIONS, write = anything else). A view may name a
different area for single actions with ``api_action_areas``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .roles import INTEGRATOR, MERCHANDISER, OPS


@dataclass(frozen=True)
class Access:
    read: frozenset[str]
    write: frozenset[str]


def _access(read: tuple[str, ...], write: tuple[str, ...] = ()) -> Access:
    return Access(frozenset(read), frozenset(write))


ALL_ROLES = (MERCHANDISER, INTEGRATOR, OPS)

# Staff may do everything and is not listed.
API_ACCESS: dict[str, Access] = {
    # products, variants
    "catalog": _access(ALL_ROLES, (MERCHANDISER,)),
    # bulk prices, price rules, buffer rules
    "prices": _access(ALL_ROLES, (MERCHANDISER,)),
    # locations are managed by staff
    "locations": _access(ALL_ROLES),
    # stock levels, movements, transfers, counts, reservations, bulk stock
    "stock": _access(ALL_ROLES, (INTEGRATOR,)),
    # channel settings and credentials are managed by staff
    "channels": _access(ALL_ROLES),
    # listings: the mapping of variants to channels, price overrides
    "listings": _access(ALL_ROLES, (MERCHANDISER,)),
    # orders and customers from every channel
    "orders": _access((INTEGRATOR, OPS), (INTEGRATOR,)),
    # sync log, alerts, push now / force resync, reconciliation
    "sync": _access((OPS,), (OPS,)),
    # the caller's own identity and token
    "self": _access(ALL_ROLES, ALL_ROLES),
}


def user_roles(request: HttpRequest) -> frozenset[str]:
    """The request user's role names, read once per request."""
    cached = getattr(request, "_api_roles", None)
    if cached is None:
        names = request.user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True)
        cached = frozenset(names)
        request._api_roles = cached
    return cached


def area_of(view: object) -> str:
    action = getattr(view, "action", None)
    per_action = getattr(view, "api_action_areas", {})
    return per_action.get(action, getattr(view, "api_area", ""))


def may_access(request: HttpRequest, area: str, *, write: bool) -> bool:
    user = request.user
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_staff:
        return True
    access = API_ACCESS.get(area)
    if access is None:  # an unlisted area is staff-only
        return False
    allowed = access.write if write else access.read
    return bool(allowed & user_roles(request))


class RolePermission(BasePermission):
    message = "Your role does not allow this request."

    def has_permission(self, request: HttpRequest, view: object) -> bool:
        area = area_of(view)
        write = request.method not in SAFE_METHODS
        # Actions that only read but are sent with POST are declared by the view.
        if getattr(view, "action", None) in getattr(view, "api_read_actions", ()):
            write = False
        return may_access(request, area, write=write)
