"""The embedded default's Celery broker: kombu's filesystem transport, made safe
for several processes.

kombu's own transport creates a message file and then writes into it, so a
worker polling the folder can take the file while it is still empty — the
message is lost and the worker's consumer dies on the empty JSON. Here a
message is written under a temporary name and renamed into place (atomic on
POSIX), and a reader claims a file by renaming it into its own folder before
reading, so two workers never get the same message. The exchange → queue
table is written the same way: kombu truncates and rewrites it in place, so a
process starting beside another could read it empty and route its first
messages nowhere.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.transport.virtual.base import BrokerState
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

SCHEME = "pimsyncfs"
log = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # not a ".msg" name: readers skip it
        with open(partial, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(partial, final)

    def _get(self, queue: str) -> dict:
        wanted = f"{queue}.msg"
        claimed_dir = os.path.join(self.processed_folder, "claimed")
        os.makedirs(claimed_dir, exist_ok=True)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(claimed_dir, f"{uuid.uuid4().hex}-{name}")
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another worker took it first
            with open(claimed, "rb") as f:
                payload = f.read()
            try:
                message = loads(bytes_to_str(payload))
            except ValueError:
                # An unreadable message must not kill the worker's consumer: keep it for
                # a look and go on. Nothing depends on one message — the database state
                # (markers, events) is swept and processed anyway.
                kept = os.path.join(self.processed_folder, "unreadable")
                os.makedirs(kept, exist_ok=True)
                os.replace(claimed, os.path.join(kept, os.path.basename(claimed)))
                log.error(
                    "broker message %s is unreadable (%d bytes); kept in %s",
                    name,
                    len(payload),
                    kept,
                )
                continue
            os.remove(claimed)
            return message
        raise filesystem.Empty()

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        table_file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with open(self.control_folder / ".bind.lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            table = self.get_table(exchange)
            if entry in table:
                return
            table.insert(0, entry)
            partial = table_file.with_name(f"{table_file.name}.{uuid.uuid4().hex}.part")
            partial.write_bytes(str_to_bytes(dumps(table)))
            os.replace(partial, table_file)


class Transport(filesystem.Transport):
    Channel = Channel

    def __init__(self, client: object, **kwargs: object) -> None:
        super().__init__(client, **kwargs)
        # kombu keeps "already bound" in one state shared by every connection in
        # the process; the bindings live in the control folder, so a connection
        # to another folder (or to one recreated) must bind again.
        self.state = BrokerState()


def register() -> None:
    TRANSPORT_ALIASES.setdefault(SCHEME, "pimsync.broker:Transport")
