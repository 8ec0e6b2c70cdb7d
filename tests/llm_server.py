"""A scripted LLM server for tests: answers Anthropic's and OpenAI's wire formats on loopback.

Tests push `Scripted` replies onto the server's queue; each POST to `/v1/messages` (Anthropic) or
`/v1/chat/completions` (OpenAI) takes the next one and answers in that API's format: a text reply with
token usage, an error status (429 with a tiny Retry-After so SDK backoff stays fast, 500, ...), a raw
malformed body, or a delay longer than the client's timeout. Every request is recorded (path, headers,
JSON body) so tests can read what the model was told. An empty queue answers 500 "script exhausted",
which makes a test that calls more than it scripted fail loudly.

    with ScriptedServer() as srv:
        srv.push(Scripted(text="hello", input_tokens=10, output_tokens=2))
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    raw: bytes | None = None  # sent as-is instead of a well-formed body
    input_tokens: int = 100
    output_tokens: int = 20
    headers: dict[str, str] = field(default_factory=dict)
    usage: bool = True  # False: omit the usage object (as some local servers do)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    def last_user_text(self) -> str:
        msgs = [m for m in self.body.get("messages", []) if m.get("role") == "user"]
        content = msgs[-1]["content"] if msgs else ""
        if isinstance(content, list):  # Anthropic content blocks
            return "".join(c.get("text", "") for c in content)
        return str(content)


def _anthropic_body(s: Scripted, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": s.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    body["usage"] = {"input_tokens": s.input_tokens, "output_tokens": s.output_tokens}
    return body


def _openai_body(s: Scripted, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": s.text}, "finish_reason": "stop"}
        ],
    }
    if s.usage:
        body["usage"] = {
            "prompt_tokens": s.input_tokens,
            "completion_tokens": s.output_tokens,
            "total_tokens": s.input_tokens + s.output_tokens,
        }
    return body


def _error_body(path: str, status: int) -> dict[str, Any]:
    kind = "rate_limit_error" if status == 429 else "api_error"
    if path.endswith("/messages"):
        return {"type": "error", "error": {"type": kind, "message": f"scripted {status}"}}
    return {"error": {"message": f"scripted {status}", "type": kind, "code": None}}


class ScriptedServer:
    """ThreadingHTTPServer on 127.0.0.1, port 0. Use as a context manager."""

    def __init__(self, responder: Callable[[Request], Scripted] | None = None) -> None:
        self.queue: deque[Scripted] = deque()
        self.responder = responder  # answers when the queue is empty (open-ended runs of whole agents)
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with server.lock:
                    server.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    scripted = server.queue.popleft() if server.queue else None
                if scripted is None and server.responder is not None:
                    scripted = server.responder(server.requests[-1])
                if scripted is None:
                    scripted = Scripted(status=500, raw=b'{"error": {"message": "script exhausted"}}')
                if scripted.delay_s:
                    time.sleep(scripted.delay_s)
                if scripted.raw is not None:
                    payload = scripted.raw
                elif scripted.status != 200:
                    payload = json.dumps(_error_body(self.path, scripted.status)).encode()
                elif self.path.endswith("/messages"):
                    payload = json.dumps(_anthropic_body(scripted, body.get("model", ""))).encode()
                elif self.path.endswith("/chat/completions"):
                    payload = json.dumps(_openai_body(scripted, body.get("model", ""))).encode()
                else:
                    scripted = Scripted(status=404)
                    payload = b'{"error": {"message": "unknown path"}}'
                headers = {"content-type": "application/json", **scripted.headers}
                if scripted.status in (429, 500, 502, 503, 504):
                    headers.setdefault("retry-after-ms", "5")  # SDK backoff would otherwise wait ~0.5 s
                try:
                    self.send_response(scripted.status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def push(self, *replies: Scripted) -> None:
        with self.lock:
            self.queue.extend(replies)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
