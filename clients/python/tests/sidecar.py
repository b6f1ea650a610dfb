"""Starts a real tokentap sidecar (--demo: an embedded simulated vLLM) for the tests.

The binary is $TOKENTAP_SIDECAR_BIN, or built once per test run with
`go build ./cmd/sidecar` from the repository that holds this file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

MODEL = "Qwen/Qwen2.5-1.5B-Instruct"  # what --demo serves with its qwen2.5 template

_built: Optional[str] = None
_build_dir: Optional[str] = None


def sidecar_bin() -> str:
    global _built, _build_dir
    env = os.environ.get("TOKENTAP_SIDECAR_BIN")
    if env:
        return env
    if _built is None:
        root = Path(__file__).resolve()
        while not (root / "go.mod").exists():
            if root.parent == root:
                raise RuntimeError("set TOKENTAP_SIDECAR_BIN: no go.mod above the tests to build the sidecar from")
            root = root.parent
        _build_dir = tempfile.mkdtemp(prefix="tokentap-py-")
        out = os.path.join(_build_dir, "sidecar")
        subprocess.run(["go", "build", "-o", out, "./cmd/sidecar"], cwd=root, check=True)
        _built = out
    return _built


def cleanup_build() -> None:
    if _build_dir:
        shutil.rmtree(_build_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sidecar:
    """One sidecar process; `restart()` starts it again on the same port and --data."""

    def __init__(self, *extra: str, data: Optional[str] = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = data
        self.extra = list(extra)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log = tempfile.TemporaryFile()
        self.start()

    def args(self) -> List[str]:
        store = ["--data", self.data] if self.data else ["--in-memory"]
        return [sidecar_bin(), "--demo", "--logprobs", "--listen", f"127.0.0.1:{self.port}", "--log-level", "info", *store, *self.extra]

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sidecar did not become ready:\n" + self.logs())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.log.close()

    def logs(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


def chat(base_url: str, messages: List[Dict[str, Any]], **params: Any) -> Dict[str, Any]:
    """One chat completion, as an agent sends it (to an attempt's base URL)."""
    body = json.dumps({"model": MODEL, "messages": messages, "max_tokens": 24, **params}).encode()
    req = urllib.request.Request(base_url + "/chat/completions", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read()))
