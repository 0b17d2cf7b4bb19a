"""Real receivers for the alert channels, on 127.0.0.1: a webhook endpoint (http.server) that checks the HMAC
signature itself, and an SMTP server (aiosmtpd) that keeps what it was sent."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.servers import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def doc(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class WebhookReceiver:
    """POSTs to http://127.0.0.1:<port>/hook. `fail_next` answers that many requests with HTTP 500 first."""

    secret: str
    fail_next: int = 0
    received: list[Received] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        receiver.refused += 1
                        self.send_response(500)
                        self.end_headers()
                        return
                    expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                    given = self.headers.get("X-Kuat-Signature-256", "")
                    receiver.received.append(Received(dict(self.headers), body, hmac.compare_digest(expected, given)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self) -> list[str]:
        with self.lock:
            return [r.doc["event"] for r in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class SmtpServer:
    """aiosmtpd on 127.0.0.1:<port>; `messages` are the parsed mails in arrival order."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        server = self
        self.messages: list[Message] = []
        self.envelopes: list[list[str]] = []
        self.lock = threading.Lock()

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                with server.lock:
                    server.messages.append(message_from_bytes(envelope.content))
                    server.envelopes.append(list(envelope.rcpt_tos))
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages]

    def stop(self) -> None:
        self.controller.stop()
