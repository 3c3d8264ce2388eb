"""The API role groups: created by the data migration, kept by roles_sync and the commands."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from pimsync.api.roles import ROLE_PERMISSIONS, ROLES, roles_sync, user_api_token, user_roles_set

pytestmark = pytest.mark.django_db


def _perms(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


@pytest.mark.parametrize("role", ROLES)
def test_the_migration_created_every_role_with_its_permissions(role):
    assert Group.objects.filter(name=role).exists()
    existing = {p for p in ROLE_PERMISSIONS[role] if "reconciliation" not in p}
    existing -= {
        "synclog.view_driftfinding",
        "synclog.view_incident",
        "synclog.change_incident",
    }
    assert existing <= _perms(role), role


@pytest.mark.parametrize(("role", "sees_it"), [("ops", True), ("merchandiser", False)])
def test_ops_may_see_the_ops_dashboard(role, sees_it):
    assert ("synclog.view_ops_dashboard" in _perms(role)) is sees_it


def test_roles_sync_restores_exactly_the_listed_permissions():
    from django.contrib.auth.models import Permission

    ops = Group.objects.get(name="ops")
    ops.permissions.add(Permission.objects.get(codename="delete_variant"))
    ops.permissions.remove(Permission.objects.get(codename="view_alert"))
    roles_sync()
    assert "inventory.delete_variant" not in _perms("ops")
    assert "synclog.view_alert" in _perms("ops")


def test_user_roles_set_replaces_roles_and_keeps_other_groups(django_user_model):
    user = django_user_model.objects.create_user("u")
    other = Group.objects.create(name="buyers")
    user.groups.add(other)
    user_roles_set(user=user, roles=["ops", "integrator"])
    user_roles_set(user=user, roles=["merchandiser"])
    assert set(user.groups.values_list("name", flat=True)) == {"buyers", "merchandiser"}
    with pytest.raises(ValueError, match="Unknown role"):
        user_roles_set(user=user, roles=["admin"])


def test_api_token_command_creates_the_user_with_roles(capsys):
    from django.contrib.auth import get_user_model

    call_command("api_token", "erp", "--create", "--role", "integrator")
    token = capsys.readouterr().out.strip()
    user = get_user_model().objects.get(username="erp")
    assert user_api_token(user=user) == token
    assert list(user.groups.values_list("name", flat=True)) == ["integrator"]
    assert not user.has_usable_password()

    call_command("api_token", "erp", "--rotate")
    assert capsys.readouterr().out.strip() not in ("", token)


def test_api_token_command_refuses_an_unknown_user_without_create():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--create"):
        call_command("api_token", "nobody")


def test_api_roles_command_reports_each_role(capsys):
    call_command("api_roles")
    out = capsys.readouterr().out
    assert all(f"{role}:" in out for role in ROLES)
