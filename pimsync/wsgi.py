import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pimsync.settings.base")
application = get_wsgi_application()


def _refuse_to_serve_without_static_files() -> None:
    """gunicorn runs no system checks: a web process whose static files were never
    collected stops here with the fix, instead of answering 500 on every admin page."""
    from django.core.checks import run_checks

    from pimsync.checks import STATIC_TAG

    problems = run_checks(tags=[STATIC_TAG], include_deployment_checks=True)
    if problems:
        raise ImproperlyConfigured(" ".join(f"{p.msg} {p.hint}" for p in problems))


_refuse_to_serve_without_static_files()
