"""Reading fly.toml as flyctl does: older spellings normalised, machine sizes resolved."""

from __future__ import annotations

import copy
from typing import Any

from controltower.checks.static.schema import size_in

SIGNALS = ("SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGSTOP")
MIN_MB_PER_SHARED_CPU, MAX_MB_PER_SHARED_CPU = 256, 2048
MIN_MB_PER_CPU, MAX_MB_PER_CPU = 2048, 8192
VM_SIZES: dict[str, tuple[str, int, int]] = {
    **{f"shared-cpu-{n}x": ("shared", n, n * MIN_MB_PER_SHARED_CPU) for n in (1, 2, 4, 6, 8)},
    **{f"performance-{n}x": ("performance", n, n * MIN_MB_PER_CPU) for n in (1, 2, 4, 6, 8, 10, 12, 14, 16)},
    **{gpu: ("performance", 8, 16 * MIN_MB_PER_CPU) for gpu in ("a100-40gb", "a100-80gb", "l40s", "a10")},
}  # fmt: skip
DEFAULT_VM = "shared-cpu-1x"

# -- flyctl's normalisation of older spellings -------------------------------------------


def tables(value: Any) -> list[Any]:
    return (
        [value] if isinstance(value, dict) else list(value) if isinstance(value, list) else [value]
    )


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """Apply flyctl's patches so older spellings are checked as the keys they become."""
    cfg = copy.deepcopy(data)
    env = cfg.get("env")
    if isinstance(env, list):
        merged: dict[str, Any] = {}
        for item in env:
            if isinstance(item, dict):
                merged.update(item)
        cfg["env"] = merged
    processes = cfg.get("processes")
    if isinstance(processes, list):
        named = {
            str(p["name"]): str(p.get("command", ""))
            for p in processes
            if isinstance(p, dict) and "name" in p
        }
        if named:
            cfg["processes"] = named
        else:
            del cfg["processes"]
    experimental = cfg.get("experimental")
    if isinstance(experimental, dict):
        if "kill_timeout" in experimental and "kill_timeout" not in cfg:
            cfg["kill_timeout"] = experimental["kill_timeout"]
        metrics = {
            k.removeprefix("metrics_"): v
            for k, v in experimental.items()
            if k in ("metrics_port", "metrics_path")
        }
        if metrics and "metrics" not in cfg and "metric" not in cfg:
            cfg["metrics"] = metrics
    for old, new in (
        ("compute", "vm"),
        ("computes", "vm"),
        ("mount", "mounts"),
        ("metric", "metrics"),
    ):
        if old in cfg:
            cfg[new] = [*(tables(cfg[new]) if new in cfg else []), *tables(cfg.pop(old))]
    checks = cfg.get("checks")
    if isinstance(checks, list):
        cfg["checks"] = {
            str(c.get("name")): {k: v for k, v in c.items() if k != "name"}
            for c in checks
            if isinstance(c, dict)
        }
    build = cfg.get("build")
    if isinstance(build, dict):
        if "build_target" in build:
            build["build-target"] = build.pop("build_target")
        if not build:
            del cfg["build"]
    services = cfg.get("services")
    if services is not None:
        cfg["services"] = [_service(s) for s in tables(services)]
        cfg["services"] = [s for s in cfg["services"] if s != {}]
    return cfg


def _service(service: Any) -> Any:
    if not isinstance(service, dict):
        return service
    concurrency = service.get("concurrency")
    if isinstance(concurrency, str) and "," in concurrency:
        soft, _, hard = concurrency.partition(",")
        if soft.strip().isdigit() and hard.strip().isdigit():
            service["concurrency"] = {
                "type": "requests",
                "soft_limit": int(soft),
                "hard_limit": int(hard),
            }
    for key in ("internal_port",):
        if isinstance(service.get(key), str) and service[key].strip().isdigit():
            service[key] = int(service[key])
    for key in ("tcp_checks", "http_checks"):
        if key in service and service[key] in ([], {}):
            del service[key]
    return service


# -- reading values -----------------------------------------------------------------


def guest_of(vm: dict[str, Any]) -> tuple[str, int, int] | None:
    """(cpu kind, cpus, memory MB) of a [[vm]] as flyctl computes it: size, then memory, then memory_mb."""
    size = vm.get("size", DEFAULT_VM)
    if size not in VM_SIZES:
        return None
    kind, cpus, memory = VM_SIZES[size]
    if "memory" in vm:
        found = size_in(vm["memory"], "MB", binary=True)
        if found is None:
            return None
        memory = found
    if isinstance(vm.get("memory_mb"), int) and vm["memory_mb"] > 0:
        memory = vm["memory_mb"]
    if isinstance(vm.get("cpus"), int) and vm["cpus"] > 0:
        cpus = vm["cpus"]
    if vm.get("cpu_kind") in ("shared", "performance"):
        kind = vm["cpu_kind"]
    return kind, cpus, memory


def vm_memory_mb(data: dict[str, Any], group: str | None = None) -> int:
    """The memory (MB) of the machines of ``group`` (default: the HTTP service's); Fly's default 256."""
    cfg = normalize(data)
    if group is None:
        http = cfg.get("http_service") if isinstance(cfg.get("http_service"), dict) else {}
        named = http.get("processes") if isinstance(http, dict) else None
        group = named[0] if isinstance(named, list) and named else "app"
    vms = [v for v in tables(cfg.get("vm", [])) if isinstance(v, dict)] if "vm" in cfg else []
    chosen = next((v for v in vms if group in (v.get("processes") or [])), None)
    chosen = chosen or next((v for v in vms if not v.get("processes")), None)
    guest = guest_of(chosen) if chosen is not None else None
    return guest[2] if guest else VM_SIZES[DEFAULT_VM][2]
