"""TCP listeners on 127.0.0.1 that are not a Dask scheduler (silent, HTTP, flood), for --cluster."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def listener(serve: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 whose every connection is handed to `serve`; its address."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    open_conns: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            open_conns.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in open_conns:
            conn.close()


def silent(conn: socket.socket) -> None:
    """Accepts, reads, never answers."""
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def http(conn: socket.socket) -> None:
    try:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except OSError:
        pass


def flood(conn: socket.socket) -> None:
    chunk = b"\xff" * 65536
    try:
        for _ in range(2000):  # 128 MiB at most: the probe gives up long before
            conn.sendall(chunk)
    except OSError:
        pass
