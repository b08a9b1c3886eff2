"""A real HTTP receiver for webhook tests: a small ``http.server`` in a thread on a
free port of 127.0.0.1 that records what it gets and answers as told per path."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.integration import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """``answers[path]``: statuses to give in turn (200 once they run out);
    ``redirects[path]``: a Location to answer 302 with; ``delays[path]``: seconds to
    wait before answering; ``bodies[path]``: a body to answer with."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [item for item in self.received if item.path == path]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.received.append(Received(self.path, headers, body))
            time.sleep(receiver.delays.get(self.path, 0))
            if self.path in receiver.redirects:
                self.send_response(302)
                self.send_header("Location", receiver.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            statuses = receiver.answers.get(self.path) or []
            status = statuses.pop(0) if statuses else 200
            reply = receiver.bodies.get(self.path, f"answered {status}".encode())
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            try:
                self.wfile.write(reply)
            except OSError:
                pass  # the client stopped reading (response size cap)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
