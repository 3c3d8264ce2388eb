"""Container healthcheck for the web service: GET /healthz on the local gunicorn.

Sent the way the TLS-terminating proxy sends it (an allowed Host, X-Forwarded-Proto:
https), so host validation and the HTTPS redirect see a normal request. Exit 0 when
the view answers 200 (database and broker reachable), 1 otherwise. Stdlib only.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def _host_header() -> str:
    # The first ALLOWED_HOSTS entry; ".example.com" allows example.com, "*" allows anything.
    first = os.environ.get("ALLOWED_HOSTS", "").split(",")[0].strip().lstrip(".")
    return "localhost" if first in {"", "*"} else first


def main() -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz",
        headers={"Host": _host_header(), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - fixed loopback http URL
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"healthz: {exc}", file=sys.stderr)
        return 1
    print(f"healthz: HTTP {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
