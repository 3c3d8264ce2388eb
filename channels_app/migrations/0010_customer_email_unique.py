"""Customers unique by normalised e-mail, step 2: the database refuses a second
customer with the same non-empty e-mail (duplicates were merged in step 1; a
migration of its own, as PostgreSQL alters no table with changes pending from
the same transaction)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels_app", "0009_customer_email_merge_duplicates"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                condition=models.Q(("email", ""), _negated=True),
                fields=("email",),
                name="customer_email_unique",
            ),
        ),
    ]
