"""The local driver's agent: supervised app processes behind tower's proxy.

It runs on its own (``python -m controltower.deploy.local.agent --state-dir
.tower/local``), started by ``tower deploy`` when absent, so the proxy keeps
serving whatever happens to the ``tower`` command. ``tower`` talks to it over a
control channel on 127.0.0.1 (one JSON line in, one out, with a token from the
0600 file ``agent.json``). Its desired state is written to ``state.json`` on
every change, so a restarted agent adopts the processes that still run and
starts the others again; ``status.json`` reports instances for monitors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from controltower.deploy.local.proxy import Proxy, Target
from controltower.http1 import Incoming, MessageError
from controltower.private import private_folder

STATE_FILE = "state.json"
STATUS_FILE = "status.json"
AGENT_FILE = "agent.json"
LOG_DIR = "logs"


@dataclass
class Instance:
    id: str
    release: str
    version: str
    port: int
    argv: list[str]
    cwd: str
    env: dict[str, str]
    health_path: str = "/"
    desired: str = "running"
    state: str = "starting"
    healthy: bool = False
    pid: int = 0
    restarts: int = 0
    admitted: bool = False
    started_at: float = 0.0
    stop_at: float | None = None
    drain: float = 30.0
    target: Target = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.target = Target(self.id, self.release, "127.0.0.1", self.port, routable=False)

    def saved(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "target"}

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "release": self.release,
            "version": self.version,
            "state": self.state,
            "healthy": self.healthy,
            "port": self.port,
            "pid": self.pid,
            "restarts": self.restarts,
            "admitted": self.admitted,
            "inflight": self.target.inflight,
            "routable": self.target.routable,
        }


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _http_ok(port: int, path: str) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(Incoming(reader, request=False).head(), 2.0)
        return head is not None and 200 <= head.status < 300
    except (OSError, TimeoutError, MessageError):
        return False
    finally:
        writer.close()


class Agent:
    def __init__(self, state_dir: Path, *, service: str, host: str, port: int) -> None:
        self.state_dir = state_dir
        self.service = service
        self.proxy = Proxy(host, port)
        self.instances: dict[str, Instance] = {}
        self.routes: dict[str, float] = {}
        self.token = secrets.token_hex(16)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.control: asyncio.Server | None = None
        self._background: set[asyncio.Task[None]] = set()

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- state -------------------------------------------------------------------------

    def load(self) -> None:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return
        data = json.loads(path.read_text())
        self.routes = {k: float(v) for k, v in data.get("routes", {}).items()}
        known = {f.name for f in fields(Instance)}
        for raw in data.get("instances", []):
            raw.setdefault("admitted", raw.get("release") in self.routes)
            instance = Instance(**{k: v for k, v in raw.items() if k in known})
            instance.state = "starting"
            self.instances[instance.id] = instance

    def save(self) -> None:
        _write(
            self.state_dir / STATE_FILE,
            {
                "service": self.service,
                "proxy": {"host": self.proxy.host, "port": self.proxy.port},
                "routes": self.routes,
                "instances": [i.saved() for i in self.instances.values()],
            },
        )
        self.write_status()

    def write_status(self) -> None:
        _write(
            self.state_dir / STATUS_FILE,
            {
                "service": self.service,
                "proxy": f"http://{self.proxy.host}:{self.proxy.port}",
                "routes": self.routes,
                "updated_at": time.time(),
                "instances": [
                    {
                        "id": i.id,
                        "version": i.version,
                        "release": i.release,
                        "state": "running" if i.state == "draining" else i.state,
                        "healthy": i.healthy,
                        "port": i.port,
                        "pid": i.pid,
                    }
                    for i in self.instances.values()
                ],
            },
        )

    def publish(self) -> None:
        """Rebuild the routing table from routes and admitted running instances, atomically.

        An instance is admitted by the first ``route`` call that finds it running
        (the engine routes only after its health gate), so a new instance of a
        release that already has traffic gets none until the next ``route``.
        """
        for instance in self.instances.values():
            instance.target.routable = (
                instance.state == "running" and instance.desired == "running" and instance.admitted
            )
        targets = [i.target for i in self.instances.values() if i.target.routable]
        self.proxy.update(self.routes, targets)

    # ---- processes ---------------------------------------------------------------------

    async def supervise(self, instance: Instance) -> None:
        delay = 0.5
        logs = self.state_dir / LOG_DIR
        logs.mkdir(exist_ok=True)
        adopted = instance.pid if alive(instance.pid) else 0
        while instance.desired == "running":
            if adopted:
                instance.pid = adopted
                adopted = 0
                process = None
            else:
                env = {**os.environ, **instance.env, "PORT": str(instance.port)}
                argv = [a.replace("{port}", str(instance.port)) for a in instance.argv]
                with open(logs / f"{instance.id}.log", "ab") as log:
                    try:
                        process = await asyncio.create_subprocess_exec(
                            *argv,
                            cwd=instance.cwd,
                            env=env,
                            stdin=asyncio.subprocess.DEVNULL,
                            stdout=log,
                            stderr=log,
                            start_new_session=True,
                        )
                    except OSError as exc:
                        log.write(f"cannot start {argv[0]}: {exc}\n".encode())
                        instance.state = "crashed"
                        instance.restarts += 1
                        self.save()
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 10.0)
                        continue
                self.processes[instance.id] = process
                instance.pid = process.pid
            instance.state = "starting"
            instance.started_at = time.time()
            self.save()
            started = time.monotonic()
            wait = 0.05
            while instance.desired == "running":
                if process is not None and process.returncode is not None:
                    break
                if process is None and not alive(instance.pid):
                    break
                if instance.state == "starting" and await self._ready(instance, process):
                    instance.state = "running"
                    delay = 0.5
                    self.publish()
                    self.save()
                await asyncio.sleep(wait)
                wait = min(wait * 1.5, 0.5 if instance.state == "starting" else 1.0)
                if instance.state == "starting" and time.monotonic() - started > 120:
                    break
            if instance.desired != "running":
                break
            instance.state = "crashed"
            instance.healthy = False
            instance.restarts += 1
            self.publish()
            self.save()
            if process is not None and process.returncode is None:
                self.kill(instance, signal.SIGKILL)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _ready(self, instance: Instance, process: asyncio.subprocess.Process | None) -> bool:
        """Port open; after a crash, readiness passing too, before traffic comes back."""
        if not await _port_open(instance.port):
            return False
        if instance.restarts and instance.admitted and process is not None:
            return await _http_ok(instance.port, instance.health_path)
        return True

    def kill(self, instance: Instance, sig: signal.Signals) -> None:
        if instance.pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(instance.pid, sig)

    async def stop_instance(self, instance: Instance) -> None:
        """Take it out of routing, let in-flight requests finish, then stop the process."""
        instance.desired = "stopped"
        if instance.state == "running":
            instance.state = "draining"
        self.publish()
        self.save()
        deadline = time.monotonic() + instance.drain
        while instance.target.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        instance.target.close_idle()
        self.kill(instance, signal.SIGTERM)
        end = time.monotonic() + 10
        while alive(instance.pid) and time.monotonic() < end:
            process = self.processes.get(instance.id)
            if process is not None and process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        if alive(instance.pid):
            self.kill(instance, signal.SIGKILL)
        process = self.processes.pop(instance.id, None)
        if process is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 5)
        task = self.tasks.pop(instance.id, None)
        if task is not None:
            task.cancel()
        instance.state = "stopped"
        self.instances.pop(instance.id, None)
        self.save()

    async def housekeeping(self) -> None:
        while not self.stopping.is_set():
            now = time.time()
            for instance in list(self.instances.values()):
                if instance.stop_at is not None and now >= instance.stop_at:
                    instance.stop_at = None
                    self.background(self.stop_instance(instance))
                elif instance.state == "running":
                    instance.healthy = await _http_ok(instance.port, instance.health_path)
                else:
                    instance.healthy = False
            self.write_status()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 2.0)

    # ---- control -----------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request = json.loads(line or b"{}")
            if request.get("token") != self.token:
                reply: dict[str, Any] = {"ok": False, "error": "bad token"}
            else:
                try:
                    reply = {"ok": True, **await self.dispatch(request)}
                except (KeyError, ValueError, TypeError) as exc:
                    reply = {"ok": False, "error": str(exc)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, json.JSONDecodeError):
            pass
        finally:
            writer.close()

    async def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"pid": os.getpid(), "proxy_port": self.proxy.port, "service": self.service}
        if op == "list":
            return {
                "instances": [i.public() for i in self.instances.values()],
                "routes": self.routes,
            }
        if op == "start":
            created = []
            for _ in range(int(request["count"])):
                instance = Instance(
                    id=f"{request['release']}-{uuid.uuid4().hex[:6]}",
                    release=request["release"],
                    version=request.get("version", ""),
                    port=free_port(),
                    argv=list(request["argv"]),
                    cwd=request.get("cwd") or ".",
                    env=dict(request.get("env", {})),
                    health_path=request.get("health_path", "/"),
                )
                self.instances[instance.id] = instance
                self.tasks[instance.id] = asyncio.create_task(self.supervise(instance))
                created.append(instance.public())
            self.save()
            return {"instances": created}
        if op == "route":
            weights = {k: float(v) for k, v in request["weights"].items() if float(v) > 0}
            for release in weights:
                if not any(
                    i.release == release and i.state == "running" and i.desired == "running"
                    for i in self.instances.values()
                ):
                    raise ValueError(f"release {release} has no running instance to route to")
            for instance in self.instances.values():
                if (
                    instance.release in weights
                    and instance.state == "running"
                    and instance.desired == "running"
                ):
                    instance.admitted = True
            self.routes = weights
            self.publish()
            self.save()
            return {"routes": self.routes}
        if op == "stop":
            ids = set(request.get("ids") or [])
            release = request.get("release")
            after = float(request.get("after") or 0)
            chosen = [
                i
                for i in self.instances.values()
                if (i.id in ids or (not ids and i.release == release)) and i.desired == "running"
            ]
            for instance in chosen:
                instance.drain = float(request.get("drain", 30.0))
                if after > 0:
                    instance.stop_at = time.time() + after
                else:
                    self.background(self.stop_instance(instance))
            if chosen and request.get("wait") and after <= 0:
                deadline = time.monotonic() + instance.drain + 15
                while time.monotonic() < deadline and any(i.id in self.instances for i in chosen):
                    await asyncio.sleep(0.05)
            self.save()
            return {"stopped": [i.id for i in chosen]}
        if op == "keep":
            for instance in self.instances.values():
                if instance.release == request["release"]:
                    instance.stop_at = None
            self.save()
            return {}
        if op == "metrics":
            return self.proxy.metrics.window(request["release"], float(request["window"]))
        if op == "shutdown":
            asyncio.get_running_loop().call_soon(self.stopping.set)
            return {}
        raise ValueError(f"unknown operation {op!r}")

    async def run(self) -> None:
        private_folder(self.state_dir)
        self.load()
        await self.proxy.start()
        self.control = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        control_port = self.control.sockets[0].getsockname()[1]
        for instance in self.instances.values():
            if instance.desired == "running":
                self.tasks[instance.id] = asyncio.create_task(self.supervise(instance))
        self.publish()
        self.save()
        _write(
            self.state_dir / AGENT_FILE,
            {
                "pid": os.getpid(),
                "control_port": control_port,
                "token": self.token,
                "proxy_host": self.proxy.host,
                "proxy_port": self.proxy.port,
                "service": self.service,
            },
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        housekeeping = asyncio.create_task(self.housekeeping())
        await self.stopping.wait()
        housekeeping.cancel()
        self.control.close()
        await asyncio.gather(
            *(self.stop_instance(i) for i in list(self.instances.values())),
            return_exceptions=True,
        )
        await self.proxy.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / AGENT_FILE).unlink()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: the proxy moves more requests per CPU-second on it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency except on Windows
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controltower.deploy.local.agent")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--service", default="app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    agent = Agent(args.state_dir, service=args.service, host=args.host, port=args.port)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(agent.run())
    except OSError as exc:
        print(f"tower agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
