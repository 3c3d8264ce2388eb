"""The API roles as Django groups with their model permissions (pimsync.api.roles)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def roles_create(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate);
    # create them now so the groups can be given them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    from pimsync.api.roles import roles_sync

    roles_sync(apps=apps)


def roles_delete(apps, schema_editor):
    from pimsync.api.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0003_api_idempotency_key"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("channels_app", "0007_alert_thresholds_webhook_refusals_oversell_settled"),
        ("synclog", "0005_ops_dashboard_admin_entry"),
    ]

    operations = [migrations.RunPython(roles_create, roles_delete)]
