"""A loopback reverse proxy in front of a real upstream reelgate.

It forwards every request unchanged and records what passed (method, path,
which key, body, answer), so tests can see exactly what the `luma` engine
sent upstream. On request it answers the next matching requests itself with
an error in the official API's shape (`{"detail": ...}`, with headers such
as `Retry-After`): the upstream failures a real Luma API produces and a
healthy reelgate never does on demand (500, 429).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class Fault:
    method: str
    path_suffix: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    detail: str = "injected upstream error"


@dataclass
class Seen:
    method: str
    path: str
    key: str
    body: Any
    status: int
    answer: Any
    at: float


class FaultProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = proxy.answer(
                    self.command, self.path, dict(self.headers), raw
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def inject(
        self, method: str, path_suffix: str, status: int, times: int = 1, **headers: str
    ) -> None:
        with self.lock:
            self.faults.append(
                Fault(
                    method,
                    path_suffix,
                    status,
                    times,
                    {k.replace("_", "-"): v for k, v in headers.items()},
                )
            )

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and path.endswith(fault.path_suffix):
                    fault.times -= 1
                    return fault
        return None

    def answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        key = headers.get("Authorization", headers.get("authorization", ""))
        key = key.removeprefix("Bearer ")
        body = json.loads(raw) if raw else None
        fault = self._fault_for(method, path.split("?")[0])
        if fault is not None:
            answer = {"detail": fault.detail}
            self._record(method, path, key, body, fault.status, answer)
            return (
                fault.status,
                {"content-type": "application/json", **fault.headers},
                json.dumps(answer).encode(),
            )
        forward = {
            k: v
            for k, v in headers.items()
            if k.lower() not in ("host", "content-length", "connection")
        }
        response = self.client.request(method, self.target + path, content=raw, headers=forward)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        self._record(method, path, key, body, response.status_code, answer)
        passed = {
            k: v
            for k, v in response.headers.items()
            if k.lower() in ("content-type", "retry-after")
        }
        return response.status_code, passed, response.content

    def _record(
        self, method: str, path: str, key: str, body: Any, status: int, answer: Any
    ) -> None:
        with self.lock:
            self.seen.append(Seen(method, path, key, body, status, answer, time.time()))

    def creates(self, since: int = 0) -> list[Seen]:
        with self.lock:
            return [
                s
                for s in self.seen[since:]
                if s.method == "POST" and s.path.endswith("/generations/video")
            ]

    def mark(self) -> int:
        with self.lock:
            return len(self.seen)

    def close(self) -> None:
        self.httpd.shutdown()
        self.client.close()
