from django.core.management.base import BaseCommand

from pimsync.demo import demo_seed


def demo_urls(host: str, port: int) -> tuple[str, str]:
    """Where the demo's admin and API docs answer once `run_stack` serves on host:port."""
    base = f"http://{host}:{port}"
    return f"{base}/admin/", f"{base}/api/docs/"


class Command(BaseCommand):
    help = "Seed the demo catalog, channels and admin login (existing data is kept)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="where run_stack will serve")
        parser.add_argument("--port", type=int, default=8000, help="where run_stack will serve")

    def handle(self, *args: object, **options: object) -> None:
        info = demo_seed()
        verb = "Seeded" if info["created"] else "Kept existing"
        admin_url, docs_url = demo_urls(str(options["host"]), int(options["port"]))
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} demo data: {info['products']} products, {info['variants']} variants, "
                f"{info['channels']} channels."
            )
        )
        self.stdout.write(
            f"Admin: {admin_url}  user: {info['username']}  password: {info['password']}"
        )
        self.stdout.write(
            f"API: {docs_url}  token: manage.py api_token "
            f"{info['username']}  (role users: {', '.join(info['api_users'])})"
        )
