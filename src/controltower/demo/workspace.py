"""The demo's workspace: a folder with its own tower.toml, store and app state.

The demo never writes into the example app's folder: it builds a tower.toml
from the example's own (``examples/app/tower.toml``), pointed at free ports,
a notification receiver and the workspace's database, and runs everything
from there. ``demo_spec`` is pure and is tested by what it returns.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.items import AoT

import controltower
from controltower.deploy.local.agent import free_port
from controltower.exceptions import UsageError

PROJECT = "example"
EXAMPLE_URL = "${EXAMPLE_URL:-http://127.0.0.1:8000}"


@dataclass(frozen=True)
class Ports:
    """The three ports the demo listens on: the app proxy, tower serve, the receiver."""

    proxy: int
    server: int
    receiver: int
    closed: int


def example_dir() -> Path:
    """The example app: packaged beside this module in a wheel, else ``examples/app`` of the checkout."""
    packaged = Path(__file__).resolve().parent / "example"
    if (packaged / "app.py").is_file():
        return packaged
    checkout = Path(controltower.__file__).resolve().parents[2] / "examples" / "app"
    if (checkout / "app.py").is_file():
        return checkout
    raise UsageError(
        "the example app is missing from this installation",
        hint="run the demo from a controltower checkout: bash scripts/demo.sh",
    )


def pick_ports() -> Ports:
    """Four distinct free ports; ``closed`` is one nothing will listen on."""
    chosen: list[int] = []
    while len(chosen) < 4:
        port = free_port()
        if port not in chosen:
            chosen.append(port)
    return Ports(*chosen)


def demo_spec(example_text: str, *, app_dir: Path, workspace: Path, ports: Ports) -> str:
    """The demo's tower.toml: the example's spec with the demo's ports, paths and channels."""
    proxy = f"http://127.0.0.1:{ports.proxy}"
    doc = tomlkit.parse(example_text.replace(EXAMPLE_URL, proxy))
    doc.add(tomlkit.comment("Written by tower demo from the example app's tower.toml."))

    deploy = doc["deploy"]
    local = deploy["local"]
    local["cwd"] = str(app_dir)
    local["proxy_port"] = ports.proxy
    if "env" not in local:
        local["env"] = tomlkit.table()
    local["env"]["APP_VERSION"] = "{version}"
    local["env"]["APP_DATABASE"] = str(workspace / "example.db")

    monitors = doc.get("monitors")
    if not isinstance(monitors, AoT):
        monitors = tomlkit.aot()
        doc["monitors"] = monitors
    search = tomlkit.table()
    search.update(
        {
            "name": "search",
            "type": "tcp",
            "host": "127.0.0.1",
            "port": ports.closed,
            "interval": "5s",
            "timeout": "1s",
            "failure_threshold": 2,
            "severity": "critical",
            "labels": {"team": "shop"},
        }
    )
    search.comment("a dependency that is down for the whole demo: it opens an incident")
    monitors.append(search)

    server = tomlkit.table()
    server.update({"host": "127.0.0.1", "port": ports.server, "title": "Example shop"})
    project = tomlkit.table()
    project.update({"name": PROJECT, "environment": "demo"})
    projects = tomlkit.aot()
    projects.append(project)
    server["projects"] = projects
    doc["server"] = server

    alerts = tomlkit.table()
    channel = tomlkit.table()
    channel.update({"type": "webhook", "url": f"http://127.0.0.1:{ports.receiver}/notify"})
    channels = tomlkit.table()
    channels["demo"] = channel
    alerts["default_channels"] = ["demo"]
    alerts["channels"] = channels
    doc["alerts"] = alerts
    return tomlkit.dumps(doc)


def prepare(workspace: Path, ports: Ports) -> Path:
    """Empty ``workspace`` and write its tower.toml; return the spec's path."""
    app_dir = example_dir()
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    text = demo_spec(
        (app_dir / "tower.toml").read_text(), app_dir=app_dir, workspace=workspace, ports=ports
    )
    path = workspace / "tower.toml"
    path.write_text(text)
    return path
