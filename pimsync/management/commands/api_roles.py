from django.core.management.base import BaseCommand

from pimsync.api.roles import roles_sync


class Command(BaseCommand):
    help = "Create or update the API role groups (merchandiser, integrator, ops) and permissions."

    def handle(self, *args: object, **options: object) -> None:
        for item in roles_sync():
            missing = f" (not yet present: {', '.join(item.missing)})" if item.missing else ""
            self.stdout.write(f"{item.role}: {item.permissions} permissions{missing}")
