"""fly.toml is checked against Fly's documented schema: every key, type, value and cross-key rule."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from controltower.checks import CheckContext, Status, run_checks, select
from controltower.checks.static.flyconfig import guest_of, normalize, vm_memory_mb
from controltower.checks.static.flyschema import dotted, problems, validate
from controltower.checks.static.schema import go_duration, human_size, size_in
from controltower.spec import parse_spec

# Every key of Fly's configuration reference, each with a valid value.
EVERY_KEY = """\
app = "shop"
primary_region = "ams"
kill_signal = "SIGTERM"
kill_timeout = "30s"
swap_size_mb = 512
console_command = "/app/bin/console"
host_dedication_id = "dedicated-1"

[experimental]
  cmd = ["node", "server.js"]
  entrypoint = ["/usr/bin/tini", "--"]
  exec = ["node", "server.js"]
  auto_rollback = true
  enable_consul = false
  enable_etcd = false
  lazy_load_images = true

[build]
  dockerfile = "Dockerfile"
  ignorefile = ".dockerignore"
  build-target = "runtime"
  compression = "zstd"
  compression_level = 3
  [build.args]
    NODE_VERSION = "22"
  [build.settings]
    cache = true

[deploy]
  release_command = "npx prisma migrate deploy"
  release_command_timeout = "10m"
  strategy = "rolling"
  max_unavailable = 0.33
  wait_timeout = "5m"
  seed_command = "npm run seed"
  [deploy.release_command_vm]
    size = "shared-cpu-2x"
    memory = "1gb"

[env]
  NODE_ENV = "production"
  PORT = 3000

[processes]
  app = "node server.js"
  worker = "node worker.js"

[http_service]
  internal_port = 3000
  force_https = true
  auto_stop_machines = "off"
  auto_start_machines = true
  min_machines_running = 2
  processes = ["app"]
  [http_service.concurrency]
    type = "requests"
    soft_limit = 200
    hard_limit = 250
  [http_service.tls_options]
    alpn = ["h2", "http/1.1"]
    versions = ["TLSv1.2", "TLSv1.3"]
    default_self_signed = false
  [http_service.http_options]
    compress = true
    h2_backend = false
    idle_timeout = 600
    headers_read_timeout = 30
    [http_service.http_options.response]
      pristine = false
      [http_service.http_options.response.headers]
        X-Powered-By = false
        Cache-Control = "no-cache"
        Vary = ["Accept", "Accept-Encoding"]
    [[http_service.http_options.replay_cache]]
      path_prefix = "/"
      ttl_seconds = 300
      type = "cookie"
      name = "session_id"
      allow_bypass = false
  [[http_service.checks]]
    grace_period = "10s"
    interval = "15s"
    method = "GET"
    timeout = "2s"
    path = "/api/health"
    protocol = "http"
    tls_skip_verify = false
    tls_server_name = "shop.example.com"
    [http_service.checks.headers]
      X-Forwarded-Proto = "https"
  [[http_service.machine_checks]]
    image = "curlimages/curl"
    entrypoint = ["/bin/sh", "-c"]
    command = ["curl http://[$FLY_TEST_MACHINE_IP]:3000/api/health"]
    kill_signal = "SIGKILL"
    kill_timeout = "5s"

[[services]]
  internal_port = 5432
  protocol = "tcp"
  processes = ["worker"]
  auto_stop_machines = false
  auto_start_machines = false
  min_machines_running = 1
  [services.concurrency]
    type = "connections"
    soft_limit = 20
    hard_limit = 25
  [[services.ports]]
    port = 5432
    handlers = ["pg_tls"]
  [[services.ports]]
    start_port = 9000
    end_port = 9010
    handlers = ["proxy_proto"]
    proxy_proto_options = { version = "v2" }
  [[services.tcp_checks]]
    grace_period = "1s"
    interval = "15s"
    timeout = "2s"
  [[services.http_checks]]
    interval = 10000
    grace_period = "5s"
    method = "get"
    path = "/healthz"
    protocol = "http"
    timeout = 2000

[checks]
  [checks.status]
    port = 3000
    type = "http"
    interval = "15s"
    timeout = "10s"
    grace_period = "30s"
    method = "get"
    path = "/api/health"
    processes = ["app"]

[[machine_checks]]
  image = "curlimages/curl"
  command = ["true"]

[[files]]
  guest_path = "/app/config.yaml"
  local_path = "config/production.yaml"
  processes = ["app"]

[[files]]
  guest_path = "/app/secret.txt"
  secret_name = "SECRET_FILE"

[[mounts]]
  source = "data"
  destination = "/data"
  initial_size = "10gb"
  snapshot_retention = 14
  scheduled_snapshots = true
  auto_extend_size_threshold = 80
  auto_extend_size_increment = "1GB"
  auto_extend_size_limit = "50GB"
  processes = ["worker"]

[[restart]]
  policy = "on-failure"
  retries = 5
  processes = ["worker"]

[[vm]]
  size = "shared-cpu-2x"
  memory = "1gb"
  processes = ["app"]

[[vm]]
  cpu_kind = "performance"
  cpus = 2
  memory_mb = 4096
  kernel_args = ["quiet"]
  persist_rootfs = "never"
  processes = ["worker"]

[[statics]]
  guest_path = "/app/public"
  url_prefix = "/static"

[[statics]]
  guest_path = "/app/assets"
  url_prefix = "/assets"
  tigris_bucket = "shop-assets"
  index_document = "index.html"

[[metrics]]
  port = 3000
  path = "/metrics"
  processes = ["app"]
"""


def problems_of(text: str) -> list[str]:
    return problems(tomllib.loads(text))


def with_lines(base: str, *extra: str) -> str:
    return base + "\n" + "\n".join(extra) + "\n"


MINIMAL = """\
app = "shop"
primary_region = "ams"

[http_service]
  internal_port = 3000
"""


class TestEveryKey:
    def test_reference_file_is_clean(self) -> None:
        """A file using every documented key with valid values has no problems."""
        assert problems_of(EVERY_KEY) == []

    def test_every_section_is_checked(self) -> None:
        """An unknown key is found in each section, wherever it is nested."""
        data = tomllib.loads(EVERY_KEY)
        spots: list[tuple[Any, ...]] = [
            (),
            ("experimental",),
            ("build",),
            ("deploy",),
            ("deploy", "release_command_vm"),
            ("http_service",),
            ("http_service", "concurrency"),
            ("http_service", "tls_options"),
            ("http_service", "http_options"),
            ("http_service", "http_options", "response"),
            ("http_service", "http_options", "replay_cache", 0),
            ("http_service", "checks", 0),
            ("http_service", "machine_checks", 0),
            ("services", 0),
            ("services", 0, "ports", 1),
            ("services", 0, "ports", 1, "proxy_proto_options"),
            ("services", 0, "tcp_checks", 0),
            ("services", 0, "http_checks", 0),
            ("checks", "status"),
            ("machine_checks", 0),
            ("files", 0),
            ("mounts", 0),
            ("restart", 0),
            ("vm", 1),
            ("statics", 1),
            ("metrics", 0),
        ]
        for spot in spots:
            copy = tomllib.loads(EVERY_KEY)
            target: Any = copy
            for part in spot:
                target = target[part]
            target["bogus_key"] = 1
            found = problems(copy)
            assert found == [f"{dotted((*spot, 'bogus_key'))}: not a fly.toml key"], (spot, found)
        assert data == tomllib.loads(EVERY_KEY)


BAD_VALUES = [
    ('kill_signal = "SIGHUP"', "kill_signal: 'SIGHUP' is not one of SIGINT, SIGTERM"),
    ('kill_timeout = "10 minutes"', "kill_timeout: '10 minutes' is not a duration"),
    ("kill_timeout = 600", "kill_timeout: 600 is above 300s (Fly waits at most 5 minutes)"),
    ('swap_size_mb = "512"', "swap_size_mb: '512' is not an integer"),
    ('primary_region = "Amsterdam"', "primary_region: 'Amsterdam' is not a region code"),
    ('app = "My App"', "app: 'My App' is not an app name"),
    ("console_command = 'sh -c \"unterminated'", "console_command: "),
    ('[deploy]\nstrategy = "yolo"', "deploy.strategy: 'yolo' is not one of canary, rolling"),
    ("[deploy]\nmax_unavailable = 0", "deploy.max_unavailable: 0 must be above 0"),
    ("[deploy]\nmax_unavailable = 1.5", "deploy.max_unavailable: 1.5 must be a fraction below 1"),
    ("[deploy]\nrelease_command = 'npx \"migrate'", "deploy.release_command: "),
    ('[build]\ncompression = "lz4"', "build.compression: 'lz4' is not one of gzip, zstd"),
    ("[build]\ncompression_level = 12", "build.compression_level: 12 is above the maximum 9"),
    ("[env]\nFLY_REGION = 'ams'", "env.FLY_REGION: env names cannot begin with FLY_"),
    ("[env]\nLIST = ['a']", "env.LIST: ['a'] is not a string"),
    ('[[vm]]\nsize = "shared-cpu-3x"', "vm[0].size: 'shared-cpu-3x' is not one of"),
    ('[[vm]]\nmemory = "lots"', "vm[0].memory: 'lots' is not a size"),
    ("[[vm]]\ncpus = 3", "vm[0].cpus: 3 is not one of 1, 2, 4"),
    ('[[vm]]\ncpu_kind = "gpu"', "vm[0].cpu_kind: 'gpu' is not one of shared, performance"),
    ('[[vm]]\nmemory = "8gb"', "vm[0]: 8192 MB is outside 256-2048 MB, the range for 1 shared CPU"),
    ('[[vm]]\nsize = "performance-1x"\nmemory = "1gb"', "vm[0]: 1024 MB is outside 2048-8192 MB"),
    ('[[vm]]\npersist_rootfs = "sometimes"', "vm[0].persist_rootfs: 'sometimes' is not one of"),
    ('[[mounts]]\nsource = "data"', "mounts[0].destination: missing (required)"),
    ('[[mounts]]\nsource = "data"\ndestination = "/"', "mounts[0].destination: cannot be /"),
    (
        '[[mounts]]\nsource = "data"\ndestination = "/data"\ninitial_size = "500mb"',
        "mounts[0].initial_size: '500mb' is below 1 GB",
    ),
    (
        '[[mounts]]\nsource = "data"\ndestination = "/data"\nsnapshot_retention = 90',
        "mounts[0].snapshot_retention: 90 is above the maximum 60",
    ),
    (
        '[[mounts]]\nsource = "data"\ndestination = "/data"\nauto_extend_size_threshold = 80',
        "mounts[0]: auto_extend_size_threshold needs auto_extend_size_increment",
    ),
    ('[[restart]]\npolicy = "sometimes"', "restart[0].policy: 'sometimes' is not one of always"),
    ('[[restart]]\nprocesses = ["web"]', "restart[0].processes: 'web' is not a process group"),
    ("[[statics]]\nguest_path = '/app/public'", "statics[0].url_prefix: missing (required)"),
    (
        "[[files]]\nguest_path = 'app/x'\nraw_value = 'eA=='",
        "files[0].guest_path: 'app/x' must be an absolute path",
    ),
    (
        "[[files]]\nguest_path = '/x'",
        "files[0]: needs exactly one of raw_value, local_path, secret_name",
    ),
    ("[[metrics]]\npath = '/metrics'", "metrics[0].port: missing (required)"),
    ("[checks.db]\nport = 5432", "checks.db.type: missing (required)"),
    (
        "[checks.db]\nport = 5432\ntype = 'tcp'\ninterval = '1s'",
        "checks.db.interval: '1s' is below 2s",
    ),
    (
        "[checks.db]\nport = 5432\ntype = 'tcp'\ntimeout = '2m'",
        "checks.db.timeout: '2m' is above 60s",
    ),
    ("[experimental]\ncmd = 5", "experimental.cmd: 5 is not a string or an array of strings"),
    (
        "[experimental]\nallowed_public_ports = []",
        "experimental.allowed_public_ports: not a fly.toml key",
    ),
]
HTTP_BAD = [
    ("internal_port = 70000", "http_service.internal_port: 70000 is above the maximum 65535"),
    ("force_https = 'yes'", "http_service.force_https: 'yes' is not true or false"),
    ("auto_stop_machines = 'sometimes'", "http_service.auto_stop_machines: 'sometimes' is not one of off, stop, suspend"),
    ("min_machines_running = -1", "http_service.min_machines_running: -1 is below the minimum 0"),
    ("autostop = true", "http_service.autostop: not a fly.toml key"),
    ("[http_service.concurrency]\ntype = 'sessions'", "http_service.concurrency.type: 'sessions' is not one of connections, requests"),
    ("[http_service.concurrency]\nsoft_limit = 300\nhard_limit = 200", "http_service.concurrency.soft_limit: 300 is above hard_limit 200"),
    ("[http_service.http_options]\nidle_timeout = -1", "http_service.http_options.idle_timeout: -1 is below the minimum 0"),
    ("[http_service.http_options.response.headers]\nX = 1", "http_service.http_options.response.headers.X: 1 is not a string, false"),
    ("[[http_service.http_options.replay_cache]]\npath_prefix = '/'\nttl_seconds = 5\ntype = 'cookie'\nname = 's'", "replay_cache[0].ttl_seconds: 5 is below the minimum 10"),
    ("[[http_service.checks]]\npath = 'health'", "http_service.checks[0].path: 'health' must start with /"),
    ("[[http_service.checks]]\npath = '/h'\ninterval = '500ms'", "http_service.checks[0].interval: '500ms' is below 1s"),
    ("[[http_service.checks]]\npath = '/h'\ntimeout = 90000", "http_service.checks[0].timeout: 90000 is above 60s"),
    ("[[http_service.checks]]\npath = '/h'\nprotocol = 'ftp'", "http_service.checks[0].protocol: 'ftp' is not one of http, https"),
    ("[[http_service.machine_checks]]\nkill_signal = 'SIGHUP'", "http_service.machine_checks[0].kill_signal: 'SIGHUP' is not one of"),
]  # fmt: skip
SERVICE_BAD = [
    ("[[services]]\ninternal_port = 8080\nprotocol = 'tcp'", "services[0].ports: missing: a service needs at least one"),
    ("[[services]]\ninternal_port = 8080\nprotocol = 'sctp'\n[[services.ports]]\nport = 80", "services[0].protocol: 'sctp' is not one of tcp, udp"),
    ("[[services]]\ninternal_port = 8080\nprotocol = 'tcp'\n[[services.ports]]\nhandlers = ['http']", "services[0].ports[0]: needs port, or start_port and end_port"),
    ("[[services]]\ninternal_port = 8080\nprotocol = 'tcp'\n[[services.ports]]\nport = 80\nhandlers = ['h3']", "services[0].ports[0].handlers[0]: 'h3' is not one of http, tls"),
    ("[[services]]\ninternal_port = 8080\nprotocol = 'tcp'\n[[services.ports]]\nport = 443\nhandlers = ['tls']\nforce_https = true", "services[0].ports[0].force_https: needs the http handler"),
    ("[[services]]\ninternal_port = 8080\nprotocol = 'tcp'\n[[services.ports]]\nstart_port = 9000\nend_port = 8000", "services[0].ports[0].start_port: 9000 is above end_port 8000"),
    ("[[services]]\ninternal_port = 8080\nprotocol = 'tcp'\n[[services.ports]]\nport = 80\nproxy_proto_options = { version = 'v3' }", "proxy_proto_options.version: 'v3' is not one of v1, v2"),
    ("[[services]]\ninternal_port = 8080\nprotocol = 'tcp'\nscript_checks = []\n[[services.ports]]\nport = 80", "services[0].script_checks: not a fly.toml key"),
]  # fmt: skip
CROSS = [
    ('[processes]\nweb = "node server.js"', "http_service.processes: missing: [processes] defines web"),
    ('[processes]\nweb = "x"\n[http_service]\ninternal_port = 1\nprocesses = ["app"]', "http_service.processes: 'app' is not a process group"),
    ("[deploy]\nstrategy = 'canary'\n[[mounts]]\nsource = 'data'\ndestination = '/data'", "deploy.strategy: 'canary' cannot be used with volumes"),
    ("[deploy]\nstrategy = 'bluegreen'", "deploy.strategy: 'bluegreen' needs at least one health check"),
    ("[[mounts]]\nsource = 'a'\ndestination = '/a'\n[[mounts]]\nsource = 'b'\ndestination = '/b'", "mounts: process group 'app' has 2 [[mounts]]"),
    ("[[statics]]\nguest_path = '/a'\nurl_prefix = '/s'\n[[statics]]\nguest_path = '/b'\nurl_prefix = '/s'", "statics: url_prefix '/s' is mapped twice"),
]  # fmt: skip


class TestBadValues:
    @pytest.mark.parametrize(("toml", "expected"), BAD_VALUES, ids=[b[1][:50] for b in BAD_VALUES])
    def test_top_level_and_sections(self, toml: str, expected: str) -> None:
        """Each wrong value is reported under its key path with what is allowed."""
        if toml.startswith("["):
            text = MINIMAL + toml + "\n"
        else:
            key = toml.split("=")[0].strip()
            rest = [line for line in MINIMAL.splitlines() if not line.startswith(key + " ")]
            text = toml + "\n" + "\n".join(rest) + "\n"
        found = problems_of(text)
        assert any(p.startswith(expected) for p in found), found

    @pytest.mark.parametrize(("toml", "expected"), HTTP_BAD, ids=[b[1][:50] for b in HTTP_BAD])
    def test_http_service(self, toml: str, expected: str) -> None:
        """Every [http_service] key and subsection is checked."""
        if toml.startswith("["):
            text = MINIMAL + toml + "\n"
        else:
            key = toml.split("=")[0].strip()
            kept = [line for line in MINIMAL.splitlines() if line.strip().split(" ")[0] != key]
            text = "\n".join(kept) + f"\n  {toml}\n"
        found = problems_of(text)
        assert any(expected in p for p in found), found

    @pytest.mark.parametrize(
        ("toml", "expected"), SERVICE_BAD, ids=[b[1][:50] for b in SERVICE_BAD]
    )
    def test_services(self, toml: str, expected: str) -> None:
        """[[services]] and their ports, handlers and options are checked."""
        found = problems_of('app = "shop"\n' + toml + "\n")
        assert any(p.startswith(expected) or expected in p for p in found), found

    @pytest.mark.parametrize(("toml", "expected"), CROSS, ids=[c[1][:50] for c in CROSS])
    def test_cross_key_rules(self, toml: str, expected: str) -> None:
        """Rules spanning sections: process groups, strategies with volumes, one mount per group."""
        text = toml + "\n" if "[http_service]" in toml else MINIMAL + toml + "\n"
        if "[http_service]" in toml:
            text = 'app = "shop"\n' + text
        found = problems_of(text)
        assert any(p.startswith(expected) for p in found), found


class TestOlderSpellings:
    def test_flyctl_patches_are_applied(self) -> None:
        """Older spellings flyctl still reads are accepted as the keys they become."""
        old = """\
app = "old"
kill_timeout = 5
processes = []
[experimental]
  auto_rollback = true
  cmd = "start.sh"
  metrics_port = 9091
  metrics_path = "/metrics"
[build]
  build_target = "runtime"
[[services]]
  internal_port = "8080"
  protocol = "tcp"
  concurrency = "20,25"
  [[services.ports]]
    port = 80
    handlers = ["http"]
  [[services.http_checks]]
    interval = 10000
    timeout = 2000
    path = "/healthcheck"
[mount]
  source = "data"
  destination = "/data"
[[compute]]
  memory = 512
"""
        assert problems_of(old) == []
        cfg = normalize(tomllib.loads(old))
        assert cfg["services"][0]["concurrency"] == {
            "type": "requests",
            "soft_limit": 20,
            "hard_limit": 25,
        }
        assert cfg["metrics"] == {"port": 9091, "path": "/metrics"}
        assert cfg["vm"] == [{"memory": 512}] and cfg["mounts"][0]["source"] == "data"
        assert "processes" not in cfg and cfg["build"] == {"build-target": "runtime"}

    def test_env_as_list_and_named_processes(self) -> None:
        """env as an array of tables and processes as [{name, command}] are merged."""
        cfg = normalize(
            {"env": [{"A": "1"}, {"B": "2"}], "processes": [{"name": "web", "command": "x"}]}
        )
        assert cfg["env"] == {"A": "1", "B": "2"} and cfg["processes"] == {"web": "x"}


class TestValues:
    def test_durations_sizes_and_guests(self) -> None:
        """Go durations, go-units sizes and machine guests are read as flyctl reads them."""
        assert go_duration("1m21s") == 81 and go_duration("500ms") == 0.5
        assert go_duration("10 minutes") is None and go_duration("0") == 0
        assert (
            human_size("1gb", binary=True) == 1024**3 and human_size("30GB", binary=False) == 30e9
        )
        assert size_in(1024, "MB", binary=True) == 1024 and size_in("8g", "MB", binary=True) == 8192
        assert (
            size_in("30", "GB", binary=False) == 30 and size_in("lots", "MB", binary=True) is None
        )
        assert guest_of({}) == ("shared", 1, 256)
        assert guest_of({"size": "performance-2x"}) == ("performance", 2, 4096)
        assert guest_of({"size": "shared-cpu-2x", "memory": "1gb", "memory_mb": 2048}) == (
            "shared",
            2,
            2048,
        )

    def test_vm_memory_of_the_http_group(self) -> None:
        """Memory is the [[vm]] serving the HTTP service's process group; Fly's default is 256 MB."""
        assert vm_memory_mb({}) == 256
        assert vm_memory_mb({"vm": [{"memory": "1gb"}]}) == 1024
        assert vm_memory_mb({"vm": [{"memory": 2048}]}) == 2048
        assert vm_memory_mb({"vm": [{"memory_mb": 512}]}) == 512
        assert vm_memory_mb({"vm": [{"size": "shared-cpu-2x"}]}) == 512
        data = tomllib.loads(EVERY_KEY)
        assert vm_memory_mb(data) == 1024 and vm_memory_mb(data, "worker") == 4096

    def test_problem_lines_point_at_the_key(self, tmp_path: Path) -> None:
        """fly.config lists each problem with its line and locates the first one."""
        text = MINIMAL + '  auto_stop_machines = "sometimes"\n[deploy]\n  strategy = "yolo"\n'
        (tmp_path / "fly.toml").write_text(text)
        spec = parse_spec('[service]\nname = "shop"\ntarget = "fly"\n')
        ctx = CheckContext(spec=spec, root=tmp_path)
        finding = asyncio.run(run_checks(ctx, select(["fly.config"]))).findings[0]
        assert finding.status is Status.FAIL
        assert finding.details == (
            "line 6: http_service.auto_stop_machines: 'sometimes' is not one of off, stop, suspend (or true, false)",
            "line 8: deploy.strategy: 'yolo' is not one of canary, rolling, immediate, bluegreen",
        )
        assert finding.location is not None and finding.location.line == 6
        assert validate(tomllib.loads(EVERY_KEY)) == []
