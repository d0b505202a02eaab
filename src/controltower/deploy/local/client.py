"""Talk to the local agent, starting it first when it is not running."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controltower.deploy.local.agent import AGENT_FILE, alive
from controltower.exceptions import DriverError
from controltower.private import private_folder

_STARTED: dict[int, subprocess.Popen[bytes]] = {}


class AgentClient:
    """The control channel to the agent of one state directory."""

    def __init__(self, state_dir: Path, *, timeout: float = 30.0) -> None:
        self.state_dir = state_dir
        self.timeout = timeout

    def _info(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.state_dir / AGENT_FILE).read_text())
            return data
        except (OSError, ValueError):
            return None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        info = self._info()
        if info is None:
            raise DriverError(
                f"the local agent is not running (no {self.state_dir / AGENT_FILE})",
                hint="run `tower deploy` or `tower deploy agent start`",
            )
        try:
            with socket.create_connection(
                ("127.0.0.1", int(info["control_port"])), timeout=self.timeout
            ) as sock:
                sock.sendall(
                    json.dumps({"token": info["token"], "op": op, **args}).encode() + b"\n"
                )
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError as exc:
            raise DriverError(f"cannot reach the local agent: {exc}") from None
        reply: dict[str, Any] = json.loads(data or b"{}")
        if not reply.get("ok"):
            raise DriverError(f"local agent refused {op}: {reply.get('error', 'no answer')}")
        return reply

    def alive(self) -> bool:
        try:
            self.call("ping")
        except DriverError:
            return False
        return True

    def ensure(self, *, service: str, host: str, port: int) -> dict[str, Any]:
        """Ping the agent; start it in its own session when it does not answer."""
        try:
            return self.call("ping")
        except DriverError:
            pass
        private_folder(self.state_dir)
        with open(self.state_dir / "agent.log", "ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "controltower.deploy.local.agent",
                    "--state-dir",
                    str(self.state_dir),
                    "--service",
                    service,
                    "--host",
                    host,
                    "--port",
                    str(port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        _STARTED[process.pid] = process
        deadline = time.monotonic() + 20
        delay = 0.05
        while time.monotonic() < deadline:
            try:
                return self.call("ping")
            except DriverError:
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        tail = (self.state_dir / "agent.log").read_text(errors="replace")[-500:]
        raise DriverError(
            f"the local agent did not start within 20s (log: {self.state_dir / 'agent.log'})",
            hint=tail.strip() or None,
        )

    def shutdown(self, *, wait: float = 30.0) -> bool:
        info = self._info()
        if info is None:
            return False
        try:
            self.call("shutdown")
        except DriverError:
            return False
        pid = int(info["pid"])
        deadline = time.monotonic() + wait
        delay = 0.02
        while time.monotonic() < deadline:
            child = _STARTED.get(pid)
            if child is not None and child.poll() is not None:
                _STARTED.pop(pid, None)
                return True
            if not alive(pid):
                return True
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        return False
