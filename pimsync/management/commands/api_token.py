from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from pimsync.api.roles import ROLES, user_api_token, user_roles_set


class Command(BaseCommand):
    help = (
        "Print a user's REST API token (created on first use). With --create the user is "
        "created when missing; --role sets their roles; --rotate replaces the token."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="Create the user if missing")
        parser.add_argument(
            "--role",
            action="append",
            choices=ROLES,
            default=None,
            help="Role to grant (repeatable); replaces the user's current roles",
        )
        parser.add_argument("--staff", action="store_true", help="Make the user staff (all APIs)")
        parser.add_argument("--rotate", action="store_true", help="Replace the existing token")

    def handle(self, *args: object, **options: object) -> None:
        users = get_user_model()
        username = str(options["username"])
        user = users.objects.filter(username=username).first()
        if user is None:
            if not options["create"]:
                raise CommandError(f"No user {username!r}; add --create to create one")
            user = users.objects.create_user(username=username)  # no password: token only
        if options["staff"] and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        if options["role"] is not None:
            user_roles_set(user=user, roles=list(options["role"]))
        self.stdout.write(user_api_token(user=user, rotate=bool(options["rotate"])))
