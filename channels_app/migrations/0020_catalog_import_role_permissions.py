"""Give the roles the catalog import's and the listings CSV's permissions
(pimsync.api.roles: merchandisers import, review and link)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def roles_resync(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate);
    # create those of the new models now so the groups can be given them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    from pimsync.api.roles import roles_sync

    roles_sync(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("channels_app", "0019_catalog_import_and_listing_csv"),
        ("inventory", "0006_product_image_urls"),
        ("synclog", "0008_attribute_event_type"),
        ("pimsync", "0001_api_idempotency_key"),
    ]

    operations = [migrations.RunPython(roles_resync, migrations.RunPython.noop)]
