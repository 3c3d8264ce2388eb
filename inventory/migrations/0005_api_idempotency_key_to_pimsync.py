"""ApiIdempotencyKey now belongs to pimsync (its migration 0001 took it over).

Removed from inventory's state only: the table, its rows and its indexes stay.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0004_api_roles"),
        ("pimsync", "0001_api_idempotency_key"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ApiIdempotencyKey")],
            database_operations=[],
        ),
    ]
