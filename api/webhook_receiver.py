"""A webhook receiver on 127.0.0.1, for development, the tests and the benchmark.

`medbook webhooks receive --port 9000 --secret whsec_...` prints every webhook
it receives, verified with the standardwebhooks library. Tests and the
benchmark use Receiver directly with a responder that decides each answer
(a status, or a delay to provoke a timeout).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def verified(self, secret: str) -> dict:
        """The JSON body if the signature verifies with secret (raises WebhookVerificationError if not)."""
        return Webhook(secret).verify(self.body, self.headers)


# A responder gets the request and returns (status, seconds to wait before answering).
Responder = Callable[[Received], tuple[int, float]]


def always(status: int = 204) -> Responder:
    return lambda _request: (status, 0.0)


class Receiver:
    """An HTTP server on 127.0.0.1 (a free port) that keeps every request it gets."""

    def __init__(self, responder: Responder | None = None, *, port: int = 0) -> None:
        self.responder = responder or always()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(length))
                with receiver._arrived:
                    receiver.received.append(request)
                    receiver._arrived.notify_all()
                status, delay = receiver.responder(request)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Waits until at least count requests arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.received)} of {count} webhooks arrived in {timeout} s")
                self._arrived.wait(left)
            return list(self.received)


def serve(port: int, secret: str | None) -> None:
    """Prints each webhook as it arrives (verified when a secret is given) until interrupted."""

    def show(request: Received) -> tuple[int, float]:
        try:
            body = request.verified(secret) if secret else json.loads(request.body)
            note = "verified" if secret else "not verified (no --secret)"
        except (WebhookVerificationError, ValueError) as exc:
            print(f"REJECTED {request.webhook_id}: {exc}", flush=True)
            return 400, 0.0
        print(f"{request.webhook_id} {body.get('type')} {note}: {json.dumps(body.get('data'))}", flush=True)
        return 204, 0.0

    with Receiver(show, port=port) as receiver:
        print(f"receiving webhooks on {receiver.url} (Ctrl-C stops)", flush=True)
        try:
            receiver.thread.join()
        except KeyboardInterrupt:
            pass
