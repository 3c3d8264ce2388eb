"""A reconcile schedule (django-celery-beat PeriodicTask) for every existing channel;
new and edited channels get theirs from channels_app.services.channel_save."""

import json

from django.db import migrations


def create_schedules(apps, schema_editor):
    Channel = apps.get_model("channels_app", "Channel")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for channel in Channel.objects.all():
        minutes = channel.reconcile_interval_minutes
        interval, _ = IntervalSchedule.objects.get_or_create(every=max(1, minutes), period="minutes")
        PeriodicTask.objects.get_or_create(
            name=f"Reconcile channel {channel.pk}",
            defaults={
                "task": "channels_app.tasks.channel_reconcile_task",
                "interval": interval,
                "args": json.dumps([channel.pk]),
                "kwargs": json.dumps({"trigger": "scheduled"}),
                "enabled": bool(channel.is_enabled and minutes),
            },
        )


class Migration(migrations.Migration):
    dependencies = [
        ("channels_app", "0004_channel_reconcile_and_drift_thresholds"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
