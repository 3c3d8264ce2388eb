"""ApiIdempotencyKey moves here from inventory (inventory 0003 created its table).

The table stays where it is: this migration adds the model to pimsync's state
only, and inventory 0005 (which depends on this one) drops it from inventory's
state only. Nothing is done to the database but relabelling the model's content
type, so its permissions follow it instead of being left stale.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_relabel(apps, schema_editor, *, old, new):
    content_types = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if content_types.objects.using(db).filter(app_label=new, model="apiidempotencykey").exists():
        return
    content_types.objects.using(db).filter(app_label=old, model="apiidempotencykey").update(
        app_label=new
    )


def to_pimsync(apps, schema_editor):
    content_type_relabel(apps, schema_editor, old="inventory", new="pimsync")


def to_inventory(apps, schema_editor):
    content_type_relabel(apps, schema_editor, old="pimsync", new="inventory")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("inventory", "0004_api_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiIdempotencyKey",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("key", models.CharField(max_length=255)),
                        (
                            "request_hash",
                            models.CharField(
                                help_text="SHA-256 of method, path and body", max_length=64
                            ),
                        ),
                        (
                            "response_status",
                            models.PositiveSmallIntegerField(blank=True, null=True),
                        ),
                        ("response_body", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="api_idempotency_keys",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "API idempotency key",
                        "db_table": "inventory_apiidempotencykey",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("user", "key"), name="api_idempotency_key_unique"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(to_pimsync, to_inventory),
    ]
