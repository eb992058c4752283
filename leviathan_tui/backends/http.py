"""Plain HTTP for the health check: small, with hard timeouts, stdlib only."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpResult:
    status: int  # 0 when no HTTP answer came (refused, timeout, reset)
    body: bytes
    error: str = ""
    elapsed_s: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


class HttpBackend:
    def request(
        self, method: str, url: str, payload: Any = None, timeout: float = 10.0
    ) -> HttpResult:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        start = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return HttpResult(response.status, response.read(), "", time.monotonic() - start)
        except urllib.error.HTTPError as err:
            return HttpResult(err.code, err.read() or b"", "", time.monotonic() - start)
        except TimeoutError:
            return HttpResult(0, b"", f"no answer within {timeout:.0f} s", time.monotonic() - start)
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, ConnectionRefusedError):
                return HttpResult(0, b"", "connection refused", time.monotonic() - start)
            if isinstance(reason, TimeoutError | socket.timeout):
                return HttpResult(
                    0, b"", f"no answer within {timeout:.0f} s", time.monotonic() - start
                )
            return HttpResult(0, b"", str(reason), time.monotonic() - start)
        except (ConnectionError, OSError) as err:
            return HttpResult(0, b"", f"{type(err).__name__}: {err}", time.monotonic() - start)

    def chat(self, base: str, model: str, timeout_s: float) -> tuple[str, float, float]:
        from leviathan_tui.health import chat_completion

        return chat_completion(base, model, timeout_s)
