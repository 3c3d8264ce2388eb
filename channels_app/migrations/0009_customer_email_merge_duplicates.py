"""Customers unique by normalised e-mail, step 1: existing duplicates are merged.

E-mails are normalised (trimmed, lower case) as customer matching does; every
group of customers sharing one is merged onto its oldest member: their orders
point at it, and it takes the phone and name it lacked (step 2 then adds the
constraint).
"""

from collections import defaultdict

from django.db import migrations


def merge_duplicates(apps, schema_editor):
    Customer = apps.get_model("channels_app", "Customer")
    ChannelOrder = apps.get_model("channels_app", "ChannelOrder")
    groups = defaultdict(list)
    for customer in Customer.objects.exclude(email="").order_by("created_at", "pk"):
        groups[customer.email.strip().lower()].append(customer)
    for email, (keeper, *others) in groups.items():
        for other in others:
            keeper.phone = keeper.phone or other.phone
            keeper.name = keeper.name or other.name
        ids = [other.pk for other in others]
        ChannelOrder.objects.filter(customer_id__in=ids).update(customer=keeper)
        Customer.objects.filter(pk__in=ids).delete()
        keeper.email = email
        keeper.save(update_fields=["email", "phone", "name"])


class Migration(migrations.Migration):
    dependencies = [
        ("channels_app", "0008_line_refunded_quantity"),
    ]

    operations = [migrations.RunPython(merge_duplicates, migrations.RunPython.noop)]
