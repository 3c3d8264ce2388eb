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
        normalised = customer.email.strip().lower()
        if customer.email != normalised:
            customer.email = normalised
            customer.save(update_fields=["email"])
        if normalised:
            groups[normalised].append(customer)
    for keeper, *others in groups.values():
        if not others:
            continue
        for other in others:
            if not keeper.phone and other.phone:
                keeper.phone = other.phone
            if not keeper.name and other.name:
                keeper.name = other.name
        keeper.save(update_fields=["phone", "name"])
        ids = [other.pk for other in others]
        ChannelOrder.objects.filter(customer_id__in=ids).update(customer=keeper)
        Customer.objects.filter(pk__in=ids).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("channels_app", "0008_line_refunded_quantity"),
    ]

    operations = [migrations.RunPython(merge_duplicates, migrations.RunPython.noop)]
