from django.core.management.base import BaseCommand

from pimsync.demo import demo_seed


class Command(BaseCommand):
    help = "Seed the demo catalog, channels and admin login (existing data is kept)."

    def handle(self, *args: object, **options: object) -> None:
        info = demo_seed()
        verb = "Seeded" if info["created"] else "Kept existing"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} demo data: {info['products']} products, {info['variants']} variants, "
                f"{info['channels']} channels."
            )
        )
        self.stdout.write(
            f"Admin: http://127.0.0.1:8000/admin/  user: {info['username']}  "
            f"password: {info['password']}"
        )
        self.stdout.write(
            f"API: http://127.0.0.1:8000/api/docs/  token: manage.py api_token "
            f"{info['username']}  (role users: {', '.join(info['api_users'])})"
        )
