"""fly.toml's schema: every documented key, its type and its allowed values.

Sources: Fly's configuration reference (https://fly.io/docs/reference/configuration/)
for keys, values and limits, and flyctl's app config (``internal/appconfig``:
the ``Config`` structs, the patches it applies to older files, ``Validate`` and
``StrictValidate``) for what it really accepts. Like flyctl, older spellings are
normalised first (``[[compute]]``, ``[mount]``, ``[metric]``, a ``processes``
list, ``env`` as a list of tables, ``"soft,hard"`` concurrency, integer check
durations in milliseconds and ``kill_timeout`` in seconds), then every key is
checked: unknown keys, wrong types, values outside their set or range, and the
cross-key rules flyctl and the reference state (services naming unknown process
groups, canary or blue-green with volumes, blue-green without health checks,
``force_https`` on a port without the http handler, ...).

``validate(data)`` returns ``(key path, problem)`` pairs; ``problems`` renders
them as ``"key.path: problem"``.
"""

from __future__ import annotations

from typing import Any

from controltower.checks.static.flyconfig import (
    DEFAULT_VM,
    MAX_MB_PER_CPU,
    MAX_MB_PER_SHARED_CPU,
    MIN_MB_PER_CPU,
    MIN_MB_PER_SHARED_CPU,
    SIGNALS,
    VM_SIZES,
    guest_of,
    normalize,
    tables,
    vm_memory_mb,
)
from controltower.checks.static.schema import (
    Anything,
    Bool,
    Duration,
    Either,
    Enum,
    Int,
    List,
    Map,
    Node,
    Number,
    Problem,
    Size,
    Str,
    Table,
    Tables,
    seconds,
    show,
)
from controltower.typing import KeyPath

STRATEGIES = ("canary", "rolling", "immediate", "bluegreen")
HANDLERS = ("http", "tls", "pg_tls", "proxy_proto")

__all__ = ["DEFAULT_VM", "SCHEMA", "VM_SIZES", "problems", "seconds", "validate", "vm_memory_mb"]


# -- rules spanning several keys -------------------------------------------------------


def _limits(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    soft, hard = table.get("soft_limit"), table.get("hard_limit")
    if isinstance(soft, int) and isinstance(hard, int) and soft > hard:
        out.append(((*path, "soft_limit"), f"{soft} is above hard_limit {hard}"))


def _port_range(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    has_port = "port" in table
    has_range = "start_port" in table or "end_port" in table
    if not has_port and not has_range:
        out.append((path, "needs port, or start_port and end_port"))
    start, end = table.get("start_port"), table.get("end_port")
    if isinstance(start, int) and isinstance(end, int) and start > end:
        out.append(((*path, "start_port"), f"{start} is above end_port {end}"))
    handlers = table.get("handlers")
    if table.get("force_https") is True and isinstance(handlers, list) and "http" not in handlers:
        out.append(((*path, "force_https"), "needs the http handler on this port"))


def _one_source(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    sources = [k for k in ("raw_value", "local_path", "secret_name") if k in table]
    if len(sources) != 1:
        out.append((path, "needs exactly one of raw_value, local_path, secret_name"))


def _auto_extend(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    keys = ("auto_extend_size_threshold", "auto_extend_size_increment", "auto_extend_size_limit")
    present = [k for k in keys if k in table]
    if present and "auto_extend_size_increment" not in present:
        out.append(
            (
                path,
                "auto_extend_size_threshold needs auto_extend_size_increment and auto_extend_size_limit",
            )
        )


def _vm_memory(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    guest = guest_of(table)
    if guest is None:
        return
    kind, cpus, memory = guest
    low, high = (
        (MIN_MB_PER_SHARED_CPU, MAX_MB_PER_SHARED_CPU)
        if kind == "shared"
        else (MIN_MB_PER_CPU, MAX_MB_PER_CPU)
    )
    if not low * cpus <= memory <= high * cpus:
        out.append(
            (
                path,
                f"{memory} MB is outside {low * cpus}-{high * cpus} MB, the range for {cpus} {kind} CPU{'s' if cpus > 1 else ''}",
            )
        )


def _check_path(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    value = table.get("path")
    if isinstance(value, str) and not value.startswith("/"):
        out.append(((*path, "path"), f"{show(value)} must start with /"))


def _env_name(name: str) -> str | None:
    if name.startswith("FLY_"):
        return "env names cannot begin with FLY_ (reserved for the runtime environment)"
    return None


def _absolute(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    value = table.get("guest_path")
    if isinstance(value, str) and not value.startswith("/"):
        out.append(((*path, "guest_path"), f"{show(value)} must be an absolute path"))


def _destination(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    if table.get("destination") == "/":
        out.append(((*path, "destination"), "cannot be / (the root file system)"))


def _max_unavailable(table: dict[str, Any], path: KeyPath, out: list[Problem]) -> None:
    value = table.get("max_unavailable")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            out.append(((*path, "max_unavailable"), f"{value} must be above 0"))
        elif value > 1 and value != int(value):
            out.append(
                (
                    (*path, "max_unavailable"),
                    f"{value} must be a fraction below 1 or a whole number",
                )
            )


# -- the schema ------------------------------------------------------------------------

STRINGS = List(Str())
STR_OR_LIST = Either((Str(), List(Str())), "a string or an array of strings")
DURATION_CHECK = Duration(
    1e-3, minimum=1.0, maximum=60.0, note=" (Fly keeps service check times within 1s-1m)"
)
_HEADERS = Map(Str())
_SERVICE_CHECK = Table(
    {
        "interval": DURATION_CHECK,
        "timeout": DURATION_CHECK,
        "grace_period": Duration(1e-3, maximum=60.0, note=" (Fly keeps it at most 1m)"),
        "method": Str(pattern=r"[A-Za-z]+", hint="is not an HTTP method"),
        "path": Str(),
        "protocol": Enum(("http", "https")),
        "tls_server_name": Str(),
        "tls_skip_verify": Bool(),
        "headers": _HEADERS,
    },
    rules=(_check_path,),
)
_TCP_CHECK = Table(
    {
        "interval": DURATION_CHECK,
        "timeout": DURATION_CHECK,
        "grace_period": Duration(1e-3, maximum=60.0, note=" (Fly keeps it at most 1m)"),
    }
)
_MACHINE_CHECK = Table(
    {
        "command": STRINGS,
        "image": Str(),
        "entrypoint": STRINGS,
        "kill_signal": Enum(SIGNALS),
        "kill_timeout": Duration(),
    }
)
_CONCURRENCY = Table(
    {
        "type": Enum(("connections", "requests")),
        "soft_limit": Int(minimum=1),
        "hard_limit": Int(minimum=1),
    },
    rules=(_limits,),
)
_TLS = Table({"alpn": STRINGS, "versions": STRINGS, "default_self_signed": Bool()})
_HTTP_OPTIONS = Table(
    {
        "compress": Bool(),
        "h2_backend": Bool(),
        "idle_timeout": Int(minimum=0, maximum=2**32 - 1),
        "headers_read_timeout": Int(minimum=0, maximum=2**32 - 1),
        "response": Table(
            {
                "headers": Map(
                    Either(
                        (Str(), Bool(), List(Str())),
                        "a string, false (to remove it) or an array of strings",
                    )
                ),
                "pristine": Bool(),
            }
        ),
        "replay_cache": Tables(
            Table(
                {
                    "path_prefix": Str(),
                    "ttl_seconds": Int(minimum=10),
                    "type": Enum(("cookie", "header")),
                    "name": Str(),
                    "allow_bypass": Bool(),
                },
                required=("path_prefix", "ttl_seconds", "type", "name"),
            )
        ),
    }
)
AUTOSTOP = Either(
    (Bool(), Enum(("off", "stop", "suspend"))), "one of off, stop, suspend (or true, false)"
)
PORT = Int(minimum=1, maximum=65535)
_SERVICE_COMMON: dict[str, Node] = {
    "internal_port": PORT,
    "auto_stop_machines": AUTOSTOP,
    "auto_start_machines": Bool(),
    "min_machines_running": Int(minimum=0),
    "processes": STRINGS,
    "concurrency": _CONCURRENCY,
    "machine_checks": Tables(_MACHINE_CHECK),
}
HTTP_SERVICE = Table(
    {
        **_SERVICE_COMMON,
        "force_https": Bool(),
        "tls_options": _TLS,
        "http_options": _HTTP_OPTIONS,
        "checks": Tables(_SERVICE_CHECK),
    },
    required=("internal_port",),
)
SERVICE = Table(
    {
        **_SERVICE_COMMON,
        "protocol": Enum(("tcp", "udp")),
        "ports": Tables(
            Table(
                {
                    "port": PORT,
                    "start_port": PORT,
                    "end_port": PORT,
                    "handlers": List(Enum(HANDLERS)),
                    "force_https": Bool(),
                    "tls_options": _TLS,
                    "http_options": _HTTP_OPTIONS,
                    "proxy_proto_options": Table({"version": Enum(("v1", "v2"))}),
                },
                rules=(_port_range,),
            )
        ),
        "tcp_checks": Tables(_TCP_CHECK),
        "http_checks": Tables(_SERVICE_CHECK),
    },
    required=("internal_port", "protocol"),
)
TOP_CHECK = Table(
    {
        "port": PORT,
        "type": Enum(("http", "tcp")),
        "interval": Duration(1e-3, minimum=2.0, note=" (Fly's minimum check interval)"),
        "timeout": Duration(1e-3, maximum=60.0, note=" (Fly's maximum check timeout)"),
        "grace_period": Duration(1e-3),
        "method": Str(pattern=r"[A-Za-z]+", hint="is not an HTTP method"),
        "path": Str(),
        "protocol": Enum(("http", "https")),
        "tls_skip_verify": Bool(),
        "tls_server_name": Str(),
        "headers": _HEADERS,
        "processes": STRINGS,
    },
    required=("port", "type"),
    rules=(_check_path,),
)
COMPUTE_FIELDS: dict[str, Node] = {
    "size": Enum(tuple(VM_SIZES)),
    "memory": Size("MB", binary=True, minimum=1),
    "memory_mb": Int(minimum=1),
    "max_memory_mb": Int(minimum=1),
    "cpus": Int(allowed=(1, 2, 4, 6, 8, 10, 12, 14, 16)),
    "cpu_kind": Enum(("shared", "performance")),
    "gpus": Int(minimum=0),
    "gpu_kind": Str(),
    "kernel_args": STR_OR_LIST,
    "host_dedication_id": Str(),
    "persist_rootfs": Enum(("never", "restart", "always")),
    "processes": STRINGS,
}
VM = Table(COMPUTE_FIELDS, rules=(_vm_memory,))
MOUNT = Table(
    {
        "source": Str(
            pattern=r"[a-z0-9_]{1,30}", hint="is not a volume name (lowercase letters, digits, _)"
        ),
        "destination": Str(pattern=r"/.*", hint="must be an absolute path"),
        "initial_size": Size("GB", binary=False, minimum=1),
        "snapshot_retention": Int(minimum=1, maximum=60),
        "scheduled_snapshots": Bool(),
        "auto_extend_size_threshold": Int(minimum=50, maximum=99),
        "auto_extend_size_increment": Size("GB", binary=False, minimum=1, maximum=100),
        "auto_extend_size_limit": Size("GB", binary=False, minimum=1, maximum=500),
        "processes": STRINGS,
    },
    required=("source", "destination"),
    rules=(_destination, _auto_extend),
)
SCHEMA = Table(
    {
        "app": Str(
            pattern=r"[a-z0-9][a-z0-9-]*", hint="is not an app name (lowercase letters, digits, -)"
        ),
        "primary_region": Str(pattern=r"[a-z]{3}", hint="is not a region code like 'ams'"),
        "kill_signal": Enum(SIGNALS),
        "kill_timeout": Duration(1.0, maximum=300.0, note=" (Fly waits at most 5 minutes)"),
        "swap_size_mb": Int(minimum=0),
        "console_command": Str(shell=True),
        "host_dedication_id": Str(),
        "machine_config": Str(),
        "container": Str(),
        "experimental": Table(
            {
                "cmd": STR_OR_LIST,
                "entrypoint": STR_OR_LIST,
                "exec": STR_OR_LIST,
                "auto_rollback": Bool(),
                "enable_consul": Bool(),
                "enable_etcd": Bool(),
                "lazy_load_images": Bool(),
                "machine_config": Str(),
                "attached": Table({"secrets": Table({"export": Map(Str())})}),
                "kill_timeout": Duration(1.0),
                "metrics_port": Int(),
                "metrics_path": Str(),
            }
        ),
        "build": Table(
            {
                "builder": Str(),
                "builtin": Str(),
                "image": Str(),
                "dockerfile": Str(),
                "ignorefile": Str(),
                "build-target": Str(),
                "buildpacks": STRINGS,
                "args": Map(Str()),
                "settings": Map(Anything()),
                "compose": Table({"file": Str()}),
                "compression": Enum(("gzip", "zstd")),
                "compression_level": Int(minimum=0, maximum=9),
            }
        ),
        "deploy": Table(
            {
                "strategy": Enum(STRATEGIES),
                "max_unavailable": Number(),
                "wait_timeout": Duration(),
                "release_command": Str(shell=True),
                "release_command_timeout": Duration(),
                "release_command_vm": Table(COMPUTE_FIELDS),
                "seed_command": Str(shell=True),
            },
            rules=(_max_unavailable,),
        ),
        "env": Map(
            Either((Str(), Number(), Bool()), "a string"), key=_env_name
        ),  # flyctl turns numbers and booleans into strings
        "processes": Map(Str(shell=True)),
        "mounts": Tables(MOUNT),
        "http_service": HTTP_SERVICE,
        "services": Tables(SERVICE),
        "checks": Map(TOP_CHECK),
        "machine_checks": Tables(_MACHINE_CHECK),
        "files": Tables(
            Table(
                {
                    "guest_path": Str(),
                    "local_path": Str(),
                    "raw_value": Str(),
                    "secret_name": Str(),
                    "processes": STRINGS,
                },
                required=("guest_path",),
                rules=(_absolute, _one_source),
            )
        ),
        "restart": Tables(
            Table(
                {
                    "policy": Enum(("always", "never", "on-failure")),
                    "retries": Int(minimum=0),
                    "processes": STRINGS,
                }
            )
        ),
        "vm": Tables(VM),
        "statics": Tables(
            Table(
                {
                    "guest_path": Str(),
                    "url_prefix": Str(pattern=r"/.*", hint="must start with /"),
                    "tigris_bucket": Str(),
                    "index_document": Str(),
                },
                required=("guest_path", "url_prefix"),
            )
        ),
        "metrics": Tables(
            Table(
                {"port": PORT, "path": Str(), "https": Bool(), "processes": STRINGS},
                required=("port",),
                rules=(_check_path,),
            )
        ),
    }
)


# -- rules across sections ----------------------------------------------------------------


def _groups(cfg: dict[str, Any]) -> set[str]:
    processes = cfg.get("processes")
    return set(processes) if isinstance(processes, dict) and processes else {"app"}


def _cross(cfg: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    groups = _groups(cfg)
    defined = isinstance(cfg.get("processes"), dict) and bool(cfg["processes"])
    services: list[tuple[KeyPath, Any]] = []
    if isinstance(cfg.get("http_service"), dict):
        services.append((("http_service",), cfg["http_service"]))
    if isinstance(cfg.get("services"), list):
        services += [
            (("services", i), s) for i, s in enumerate(cfg["services"]) if isinstance(s, dict)
        ]
    for path, service in services:
        named = service.get("processes")
        if not named and defined:
            out.append(
                (
                    (*path, "processes"),
                    f"missing: [processes] defines {', '.join(sorted(groups))}; name the groups this service serves",
                )
            )
        for name in named if isinstance(named, list) else []:
            if name not in groups:
                out.append(
                    ((*path, "processes"), f"{name!r} is not a process group in [processes]")
                )
        if path[0] == "services" and not service.get("ports"):
            out.append(
                ((*path, "ports"), "missing: a service needs at least one [[services.ports]]")
            )
    for index, restart in enumerate(tables(cfg.get("restart", []))):
        if isinstance(restart, dict):
            for name in restart.get("processes") or []:
                if name not in groups:
                    out.append(
                        (
                            ("restart", index, "processes"),
                            f"{name!r} is not a process group in [processes]",
                        )
                    )
    deploy = cfg.get("deploy")
    strategy = deploy.get("strategy") if isinstance(deploy, dict) else None
    mounts = [m for m in tables(cfg.get("mounts", [])) if m] if "mounts" in cfg else []
    if strategy in ("canary", "bluegreen") and mounts:
        out.append(
            (("deploy", "strategy"), f"{strategy!r} cannot be used with volumes ([[mounts]])")
        )
    if strategy == "bluegreen" and not _has_health_checks(cfg):
        out.append((("deploy", "strategy"), "'bluegreen' needs at least one health check"))
    mounted: dict[str, int] = {}
    for mount in mounts:
        if isinstance(mount, dict):
            for group in mount.get("processes") or sorted(groups):
                mounted[group] = mounted.get(group, 0) + 1
    for group, count in sorted(mounted.items()):
        if count > 1:
            out.append(
                (
                    ("mounts",),
                    f"process group {group!r} has {count} [[mounts]]; a machine mounts one volume",
                )
            )
    statics = (
        [s for s in tables(cfg.get("statics", [])) if isinstance(s, dict)]
        if "statics" in cfg
        else []
    )
    if len(statics) > 10:
        out.append((("statics",), f"{len(statics)} [[statics]]; Fly serves at most 10"))
    prefixes = [s.get("url_prefix") for s in statics]
    for prefix in sorted({p for p in prefixes if isinstance(p, str) and prefixes.count(p) > 1}):
        out.append((("statics",), f"url_prefix {prefix!r} is mapped twice"))
    return out


def _has_health_checks(cfg: dict[str, Any]) -> bool:
    http = cfg.get("http_service")
    if isinstance(http, dict) and http.get("checks"):
        return True
    for service in tables(cfg.get("services", [])) if "services" in cfg else []:
        if isinstance(service, dict) and (service.get("http_checks") or service.get("tcp_checks")):
            return True
    return bool(cfg.get("checks"))


def validate(data: dict[str, Any]) -> list[Problem]:
    """Every unknown key, wrongly typed value, value out of range and broken cross-key rule."""
    cfg = normalize(data)
    out: list[Problem] = []
    SCHEMA.check((), cfg, out)
    out += _cross(cfg)
    return out


def problems(data: dict[str, Any]) -> list[str]:
    """``validate`` as ``"key.path: problem"`` lines."""
    return [f"{dotted(path)}: {message}" if path else message for path, message in validate(data)]


def dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
