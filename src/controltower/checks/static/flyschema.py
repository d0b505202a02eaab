"""fly.toml's documented keys and value types (https://fly.io/docs/reference/configuration/)."""

from __future__ import annotations

import re
from typing import Any

from controltower.units import parse_size

DURATION = re.compile(r"^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))*$")
SIGNALS = ("SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGSTOP", "SIGHUP")
VM_SIZES = {
    "shared-cpu-1x": 256,
    "shared-cpu-2x": 512,
    "shared-cpu-4x": 1024,
    "shared-cpu-8x": 2048,
    "performance-1x": 2048,
    "performance-2x": 4096,
    "performance-4x": 8192,
    "performance-8x": 16384,
    "performance-16x": 32768,
}

Schema = dict[str, Any]

_CHECK: Schema = {
    "grace_period": "duration",
    "interval": "duration",
    "timeout": "duration",
    "method": "str",
    "path": "str",
    "protocol": ("enum", "http", "https"),
    "tls_server_name": "str",
    "tls_skip_verify": "bool",
    "headers": "table",
    "type": ("enum", "http", "tcp"),
    "port": "int",
    "restart_limit": "int",
    "processes": "list",
}
_CONCURRENCY: Schema = {
    "type": ("enum", "connections", "requests"),
    "soft_limit": "int",
    "hard_limit": "int",
}
_HTTP_OPTIONS: Schema = {
    "compress": "bool",
    "h2_backend": "bool",
    "idle_timeout": "int",
    "headers_read_timeout": "int",
    "response": {"headers": "table", "pristine": "bool"},
}
_TLS: Schema = {"alpn": "list", "versions": "list", "default_self_signed": "bool"}
_AUTOSTOP = ("autostop", "off", "stop", "suspend")
_SERVICE_COMMON: Schema = {
    "internal_port": "int",
    "auto_stop_machines": _AUTOSTOP,
    "auto_start_machines": "bool",
    "min_machines_running": "int",
    "processes": "list",
    "concurrency": _CONCURRENCY,
}
_PORT: Schema = {
    "port": "int",
    "start_port": "int",
    "end_port": "int",
    "handlers": "list",
    "force_https": "bool",
    "http_options": _HTTP_OPTIONS,
    "tls_options": _TLS,
    "proxy_proto_options": {"version": "str"},
}
SCHEMA: Schema = {
    "app": "str",
    "primary_region": "str",
    "kill_signal": ("enum", *SIGNALS),
    "kill_timeout": "duration",
    "swap_size_mb": "int",
    "console_command": "str",
    "host_dedication_id": "str",
    "build": {
        "builder": "str",
        "image": "str",
        "dockerfile": "str",
        "ignorefile": "str",
        "build-target": "str",
        "buildpacks": "list",
        "args": "table",
        "settings": "table",
        "buildpacks_docker_host": "str",
        "buildpacks_volumes": "list",
    },
    "deploy": {
        "release_command": "str",
        "release_command_timeout": "duration",
        "release_command_vm": {"size": "str", "memory": "memory"},
        "strategy": ("enum", "canary", "rolling", "bluegreen", "immediate"),
        "max_unavailable": "number",
        "wait_timeout": "duration",
    },
    "env": "table",
    "processes": "table",
    "http_service": {
        **_SERVICE_COMMON,
        "force_https": "bool",
        "http_options": _HTTP_OPTIONS,
        "tls_options": _TLS,
        "checks": [_CHECK],
        "machine_checks": ["table"],
    },
    "services": [
        {
            **_SERVICE_COMMON,
            "protocol": ("enum", "tcp", "udp"),
            "ports": [_PORT],
            "tcp_checks": [_CHECK],
            "http_checks": [_CHECK],
            "machine_checks": ["table"],
        }
    ],
    "checks": "table",
    "vm": [
        {
            "size": "str",
            "memory": "memory",
            "memory_mb": "int",
            "cpus": "int",
            "cpu_kind": ("enum", "shared", "performance"),
            "gpus": "int",
            "gpu_kind": "str",
            "kernel_args": "list",
            "host_dedication_id": "str",
            "processes": "list",
            "persist_rootfs": "str",
        }
    ],
    "metrics": "metrics",
    "statics": [
        {"guest_path": "str", "url_prefix": "str", "tigris_bucket": "str", "index_document": "str"}
    ],
    "mounts": "mounts",
    "files": [
        {
            "guest_path": "str",
            "local_path": "str",
            "raw_value": "str",
            "secret_name": "str",
            "processes": "list",
        }
    ],
    "restart": [
        {"policy": ("enum", "always", "never", "on-failure"), "retries": "int", "processes": "list"}
    ],
    "experimental": "table",
}
_METRICS: Schema = {"port": "int", "path": "str", "processes": "list", "https": "bool"}
_MOUNT: Schema = {
    "source": "str",
    "destination": "str",
    "initial_size": "memory",
    "processes": "list",
    "snapshot_retention": "int",
    "scheduled_snapshots": "bool",
    "auto_extend_size_threshold": "int",
    "auto_extend_size_increment": "memory",
    "auto_extend_size_limit": "memory",
}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float | str) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "duration":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and bool(DURATION.match(value))
        )
    if kind == "memory":
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        try:
            parse_size(str(value))
        except Exception:
            return False
        return True
    return True


def validate(data: dict[str, Any], schema: Schema = SCHEMA, prefix: str = "") -> list[str]:
    """Every unknown key and wrongly typed value, as ``key.path: problem``."""
    problems: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in schema:
            problems.append(f"{path}: not a fly.toml key")
            continue
        problems += _value(path, schema[key], value)
    return problems


def _value(path: str, rule: Any, value: Any) -> list[str]:
    if rule == "metrics":
        items = value if isinstance(value, list) else [value]
        return [
            p
            for i, item in enumerate(items)
            for p in _value(f"{path}[{i}]" if isinstance(value, list) else path, _METRICS, item)
        ]
    if rule == "mounts":
        items = value if isinstance(value, list) else [value]
        return [p for item in items for p in _value(path, _MOUNT, item)]
    if isinstance(rule, dict):
        if not isinstance(value, dict):
            return [f"{path}: must be a table"]
        return validate(value, rule, path + ".")
    if isinstance(rule, list):
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            return [f"{path}: must be an array of tables"]
        return [p for i, item in enumerate(value) for p in _value(f"{path}[{i}]", rule[0], item)]
    if isinstance(rule, tuple):
        allowed = rule[1:]
        if rule[0] == "autostop" and isinstance(value, bool):
            return []
        if not isinstance(value, str) or value not in allowed:
            return [f"{path}: {value!r} is not one of {', '.join(allowed)}"]
        return []
    if not _type_ok(rule, value):
        return [f"{path}: {value!r} is not a valid {rule}"]
    return []


def vm_memory_mb(data: dict[str, Any]) -> int:
    """The machine memory fly.toml asks for, in MB (Fly's default: 256)."""
    vms = data.get("vm") or []
    vms = [vms] if isinstance(vms, dict) else vms
    best = 0
    for vm in vms:
        if not isinstance(vm, dict):
            continue
        if isinstance(vm.get("memory_mb"), int):
            best = max(best, vm["memory_mb"])
        elif "memory" in vm:
            raw = vm["memory"]
            if isinstance(raw, int) or str(raw).isdigit():
                best = max(best, int(raw))
            else:
                best = max(best, parse_size(str(raw)) // (1024 * 1024))
        elif vm.get("size") in VM_SIZES:
            best = max(best, VM_SIZES[vm["size"]])
        else:
            best = max(best, 256)
    return best or 256


def seconds(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not DURATION.match(value):
        return None
    factors = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(
        float(n) * factors[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    )
