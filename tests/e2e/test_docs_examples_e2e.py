"""Every documented curl example runs as written against a live stack.

The stack is what `make run` gives a reader: the demo seeded (catalog, five
channels, role users), pimsync serving HTTP (pytest-django's live server), a
Celery worker process and the channel sandbox. Each document's ``sh`` blocks that
call curl are run in order in one bash session - as a reader pastes them into one
terminal - with the documented addresses replaced by the live ones (the docs say
`make run` serves on 127.0.0.1:8000 and the sandbox on 8700). Every curl call must
answer a 2xx; bash stops at the first failing command.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pimsync.demo import demo_seed

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOCUMENTED_WEB = "http://127.0.0.1:8000"
DOCUMENTED_SANDBOX = "localhost:8700"
# Each curl call also writes its response headers to a file of its own (named by
# the time it started, so they sort in the order of the calls, subshells included).
CURL_RECORDING = """
set -eo pipefail
curl() {
  command curl -D "$(mktemp -p "$CURL_HEADERS" "$(date +%s%N)-XXXX")" "$@"
}
"""


def curl_blocks(document: Path) -> list[str]:
    return [b for b in BLOCK.findall(document.read_text()) if re.search(r"\bcurl ", b)]


def curl_calls(blocks: list[str]) -> int:
    """curl commands written in the blocks (comments, which show answers, left out)."""
    code = [line.split("#", 1)[0] for block in blocks for line in block.splitlines()]
    return sum(len(re.findall(r"\bcurl ", line)) for line in code)


DOCUMENTS_WITH_CURL = [d for d in DOCUMENTS if curl_blocks(d)]


def statuses(headers_dir: Path) -> list[tuple[str, int]]:
    """(file, final HTTP status) per curl call, in call order."""
    found = []
    for path in sorted(headers_dir.iterdir()):
        codes = re.findall(r"^HTTP/[\d.]+ (\d{3})", path.read_text(), re.MULTILINE)
        found.append((path.name, int(codes[-1]) if codes else 0))
    return found


def test_the_docs_have_curl_examples() -> None:
    names = {d.name for d in DOCUMENTS_WITH_CURL}
    assert {"api.md", "sandbox.md", "publishing.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS_WITH_CURL, ids=lambda d: d.name)
def test_a_documents_curl_examples_run_as_written(
    document, live_server, sandbox_server, start_worker, worker_env, settings, tmp_path
) -> None:
    settings.PIMSYNC_DEMO_SANDBOX_URL = sandbox_server.url
    settings.VAR_DIR = tmp_path
    seeded = demo_seed()
    sandbox_server.app.seed_from_file(seeded["sandbox_seed"])
    start_worker()
    sandbox_address = sandbox_server.url.removeprefix("http://")
    blocks = curl_blocks(document)
    script = "\n".join(
        block.replace(DOCUMENTED_WEB, live_server.url).replace(DOCUMENTED_SANDBOX, sandbox_address)
        for block in blocks
    )
    headers = tmp_path / "curl-headers"
    headers.mkdir()

    ran = subprocess.run(  # noqa: S603 - the documentation's own examples
        ["bash", "-c", CURL_RECORDING + script],  # noqa: S607 - bash from PATH
        cwd=ROOT,
        env={**worker_env, "CURL_HEADERS": str(headers)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert ran.returncode == 0, f"{document.name}: {ran.stderr[-3000:]}\n{ran.stdout[-3000:]}"
    answered = statuses(headers)
    # every curl written ran (one in a loop runs more than once)
    assert len(answered) >= curl_calls(blocks), (answered, ran.stdout[-3000:])
    failed = [(name, status) for name, status in answered if not 200 <= status < 300]
    assert failed == [], f"{document.name}: {failed}\n{ran.stdout[-4000:]}"
