"""A real webhook receiver on loopback: it verifies each delivery's Standard Webhooks signature
with the `standardwebhooks` library, as a subscriber would, and answers with the statuses it is
told to (500 first, say), or holds a request and drops the connection (a server gone mid-delivery)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Delivery:
    id: str
    headers: dict[str, str]
    body: bytes
    payload: dict | None  # the verified JSON; None when the signature did not verify
    error: str | None
    answered: int | None  # the status sent back; None when the connection was dropped


class Receiver:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.deliveries: list[Delivery] = []
        self.statuses: list[int] = []  # answered in order, then 200
        self.hold: threading.Event | None = None  # the next request waits for it, then is dropped
        self.held = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner._receive(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _receive(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        payload, error = None, None
        try:
            payload = Webhook(self.secret).verify(body, headers) if self.secret else None
        except WebhookVerificationError as exc:
            error = str(exc)
        hold, self.hold = self.hold, None
        if hold is not None:
            self.deliveries.append(Delivery(headers.get("webhook-id", ""), headers, body, payload, error, None))
            self.held.set()
            hold.wait(30)
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        status = self.statuses.pop(0) if self.statuses else 200
        self.deliveries.append(Delivery(headers.get("webhook-id", ""), headers, body, payload, error, status))
        raw = json.dumps({"ok": status < 300}).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Delivery]:
        """The deliveries once there are at least n (AssertionError past the timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < n:
            assert time.monotonic() < deadline, f"{len(self.deliveries)} deliveries, expected {n}"
            time.sleep(0.05)
        return list(self.deliveries)

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
