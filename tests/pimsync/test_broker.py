"""The embedded broker never hands out a half-written message, nor one twice."""

import threading

from kombu import Connection

from pimsync.broker import register

register()


def connection(folder) -> Connection:
    return Connection(
        "pimsyncfs://",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder.parent / "processed"),
            "control_folder": str(folder.parent / "control"),
            "polling_interval": 0.01,
        },
    )


def test_parallel_producers_and_consumers_get_every_message_once(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    (tmp_path / "processed").mkdir()
    received: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def produce(start: int) -> None:
        with connection(folder) as conn, conn.SimpleQueue("q") as q:
            for n in range(start, start + 200):
                q.put({"n": n, "pad": "x" * 5000})

    def consume() -> None:
        try:
            with connection(folder) as conn, conn.SimpleQueue("q") as q:
                while True:
                    try:
                        message = q.get(timeout=1.0)
                    except q.Empty:
                        return
                    with lock:
                        received.append(message.payload["n"])
                    message.ack()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(i * 200,)) for i in range(3)]
    threads += [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(received) == list(range(600))


def test_a_message_being_written_is_not_visible(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    (tmp_path / "processed").mkdir()
    (folder / "1_abc.q.msg.part").write_bytes(b"")  # a writer mid-way
    with connection(folder) as conn, conn.SimpleQueue("q") as q:
        q.put({"n": 1})
        assert q.get(timeout=1.0).payload == {"n": 1}
        try:
            q.get(timeout=0.2)
            raise AssertionError("the partial file was delivered")
        except q.Empty:
            pass


def test_an_unreadable_message_is_set_aside_and_the_next_one_delivered(tmp_path, caplog):
    folder = tmp_path / "queue"
    folder.mkdir()
    (tmp_path / "processed").mkdir()
    (folder / "0_empty.q.msg").write_bytes(b"")  # e.g. a writer that died mid-way
    with connection(folder) as conn, conn.SimpleQueue("q") as q:
        q.put({"n": 2})
        assert q.get(timeout=1.0).payload == {"n": 2}
    kept = [p.name for p in (tmp_path / "processed" / "unreadable").iterdir()]
    assert len(kept) == 1
    assert kept[0].endswith("0_empty.q.msg")
    assert "is unreadable (0 bytes)" in caplog.text
