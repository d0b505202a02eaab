"""A table of bad tower.toml files, each with the exact message it must produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from controltower.exceptions import SpecError
from controltower.spec import load_spec, parse_spec

BASE = '[service]\nname = "shop"\n'

CASES: list[tuple[str, str, str]] = [
    (
        "unknown strategy",
        BASE + '\n[deploy]\nstrategy = "blue-green"\n',
        "tower.toml:5: deploy.strategy: must be one of immediate, rolling, bluegreen, canary "
        '(got "blue-green")',
    ),
    (
        "unknown key with suggestion",
        BASE + 'memroy = "512mb"\n',
        'tower.toml:3: service.memroy: unknown key (did you mean "memory"?)',
    ),
    (
        "unknown top-level table",
        BASE + '[deplo]\nstrategy = "canary"\n',
        'tower.toml:3: deplo: unknown key (did you mean "deploy"?)',
    ),
    (
        "missing service name",
        "[service]\nport = 3000\n",
        "tower.toml:1: service.name: required key is missing",
    ),
    (
        "missing service table",
        '[health]\nreadiness = "/api/health"\n',
        "tower.toml:1: service: required key is missing",
    ),
    (
        "bad duration",
        BASE + '[deploy.health]\ndeadline = "5 minutes"\n',
        "tower.toml:4: deploy.health.deadline: must be a duration like 30s, 5m or 1h "
        '(got "5 minutes")',
    ),
    (
        "bad size",
        BASE + 'memory = "lots"\n',
        'tower.toml:3: service.memory: must be a size like 512mb or 2gb (got "lots")',
    ),
    (
        "bad percentage",
        BASE + '[[deploy.steps]]\nweight = "150%"\n',
        "tower.toml:4: deploy.steps[0].weight: must be a percentage between 0% and 100% "
        '(got "150%")',
    ),
    (
        "port out of range",
        BASE + "port = 70000\n",
        "tower.toml:3: service.port: must be at most 65535 (got 70000)",
    ),
    (
        "port not a number",
        BASE + 'port = "http"\n',
        'tower.toml:3: service.port: must be a whole number (got "http")',
    ),
    (
        "health path without slash",
        BASE + '[health]\nreadiness = "api/health"\n',
        'tower.toml:4: health.readiness: must be a path starting with "/" (got "api/health")',
    ),
    (
        "environment url not http",
        BASE + '[environments.production]\nurl = "shop.example.com"\n',
        "tower.toml:4: environments.production.url: must be an http:// or https:// URL "
        '(got "shop.example.com")',
    ),
    (
        "bad condition operator",
        BASE + '[[monitors]]\nname = "api"\nurl = "http://x"\nconditions = ["status = 200"]\n',
        'tower.toml:6: monitors[0].conditions[0]: invalid condition "status = 200": '
        "unexpected '=' at column 8 (use == to compare)",
    ),
    (
        "monitor type",
        BASE + '[[monitors]]\nname = "api"\ntype = "ping"\n',
        "tower.toml:5: monitors[0].type: must be one of http, tcp, tls, keyword, heartbeat, "
        'prometheus, machine, vitals (got "ping")',
    ),
    (
        "second monitor missing name",
        BASE + '[[monitors]]\nname = "a"\nurl = "http://a"\n[[monitors]]\nurl = "http://x"\n',
        "tower.toml:6: monitors[1].name: required key is missing",
    ),
    (
        "duplicate monitor names",
        BASE + '[[monitors]]\nname = "a"\ntype = "tcp"\nhost = "db"\nport = 5432\n'
        '[[monitors]]\nname = "a"\ntype = "heartbeat"\n',
        'tower.toml:9: monitors[1].name: "a" is already the name of a monitor',
    ),
    (
        "unknown dependency",
        BASE + '[[monitors]]\nname = "app"\ntype = "heartbeat"\ndepends_on = ["db"]\n',
        'tower.toml:6: monitors[0].depends_on: "db" is not a monitor (monitors: app)',
    ),
    (
        "dependency cycle",
        BASE
        + '[[monitors]]\nname = "a"\ntype = "heartbeat"\ndepends_on = ["b"]\n'
        + '[[monitors]]\nname = "b"\ntype = "heartbeat"\ndepends_on = ["a"]\n',
        "tower.toml:6: monitors[0].depends_on: depends on itself through a -> b -> a "
        "(a monitor cannot wait for itself to be up)",
    ),
    (
        "http monitor without url",
        BASE + '[[monitors]]\nname = "api"\n',
        "tower.toml:3: monitors[0]: an http monitor needs url",
    ),
    (
        "http monitor with a bare host",
        BASE + '[[monitors]]\nname = "api"\nurl = "shop.example.com/health"\n',
        "tower.toml:3: monitors[0]: an http monitor's url must start with http:// or https:// "
        '(got "shop.example.com/health")',
    ),
    (
        "keyword monitor without keyword",
        BASE + '[[monitors]]\nname = "home"\ntype = "keyword"\nurl = "https://shop.test/"\n',
        "tower.toml:3: monitors[0]: a keyword monitor needs keyword (the text the page must "
        "contain)",
    ),
    (
        "tcp monitor without port",
        BASE + '[[monitors]]\nname = "db"\ntype = "tcp"\nhost = "db.internal"\n',
        "tower.toml:3: monitors[0]: a tcp monitor needs port",
    ),
    (
        "tls monitor without host",
        BASE + '[[monitors]]\nname = "cert"\ntype = "tls"\n',
        "tower.toml:3: monitors[0]: a tls monitor needs host (or url)",
    ),
    (
        "bad metric expression",
        BASE
        + '[[monitors]]\nname = "m"\ntype = "prometheus"\nurl = "http://app/metrics"\n'
        + '[monitors.metrics]\nmem = "process_resident_memory_bytes /"\n',
        "tower.toml:3: monitors[0]: metrics.mem: metric expression "
        "'process_resident_memory_bytes /': ends too early",
    ),
    (
        "bad maintenance cron",
        BASE + '[[alerts.maintenance]]\ncron = "every sunday"\n',
        'tower.toml:4: alerts.maintenance[0].cron: must be a cron schedule like "0 3 * * sun" '
        '(got "every sunday")',
    ),
    (
        "bad maintenance weekday",
        BASE + '[[alerts.maintenance]]\nweekdays = ["sunday", "funday"]\nstart = "03:00"\n',
        'tower.toml:4: alerts.maintenance[0].weekdays: must be days like "mon", "tue" ... "sun" '
        '(got "funday")',
    ),
    (
        "bad maintenance start",
        BASE + '[[alerts.maintenance]]\nweekdays = ["sun"]\nstart = "25:00"\n',
        'tower.toml:5: alerts.maintenance[0].start: must be a time of day as HH:MM (got "25:00")',
    ),
    (
        "bad maintenance timezone",
        BASE + '[[alerts.maintenance]]\ncron = "0 3 * * sun"\ntimezone = "Mars/Olympus"\n',
        "tower.toml:5: alerts.maintenance[0].timezone: must be an IANA time zone such as "
        '"Europe/Paris" or "UTC" (got "Mars/Olympus")',
    ),
    (
        "maintenance without a schedule",
        BASE + '[[alerts.maintenance]]\nname = "nightly"\n',
        'tower.toml:3: alerts.maintenance[0]: needs cron = "..." or start = "HH:MM" '
        "(with weekdays)",
    ),
    (
        "route names unknown channel",
        BASE + '[alerts.channels.ops]\ntype = "slack"\nurl = "https://x"\n[[alerts.routes]]\n'
        'channels = ["pager"]\n',
        'tower.toml:7: alerts.routes[0].channels: "pager" is not a channel in [alerts.channels] '
        "(defined: ops)",
    ),
    (
        "channel type",
        BASE + '[alerts.channels.ops]\ntype = "sms"\n',
        "tower.toml:4: alerts.channels.ops.type: must be one of slack, resend, smtp, webhook, "
        'apprise (got "sms")',
    ),
    (
        "secret field of the wrong type is not echoed",
        BASE + '[alerts.channels.ops]\ntype = "slack"\nurl = 12345\n',
        "tower.toml:5: alerts.channels.ops.url: must be a string",
    ),
    (
        "unset variable",
        BASE + '[environments.production]\nurl = "${SHOP_URL}"\n',
        "tower.toml:4: environments.production.url: environment variable SHOP_URL is not set "
        "(set it, or give a default: ${SHOP_URL:-default})",
    ),
    (
        "malformed variable reference",
        BASE + 'description = "${not valid}"\n',
        'tower.toml:3: service.description: "${not valid}" is not a valid variable reference; '
        "write ${NAME} or ${NAME:-default}",
    ),
    (
        "invalid TOML",
        BASE + "port = = 3\n",
        "tower.toml:3: invalid TOML: Invalid value (column 8)",
    ),
    (
        "env var enum without values",
        BASE + '[env.vars.MODE]\nformat = "enum"\n',
        'tower.toml:3: env.vars.MODE: format "enum" needs values = [...]',
    ),
    (
        "waiver without expiry",
        BASE + '[[waivers]]\ncheck = "docker.healthcheck"\nreason = "fly ignores it"\n',
        "tower.toml:3: waivers[0].expires: required key is missing",
    ),
    (
        "waiver with a bad date",
        BASE + '[[waivers]]\ncheck = "x"\nreason = "because"\nexpires = "soon"\n',
        'tower.toml:6: waivers[0].expires: must be a date like 2026-12-31 (got "soon")',
    ),
    (
        "gate out of range",
        BASE + "[deploy]\ngates = [1, 4]\n",
        "tower.toml:4: deploy.gates[1]: must be one of 1, 2, 3 (got 4)",
    ),
    (
        "instances below one",
        BASE + "[deploy]\ninstances = 0\n",
        "tower.toml:4: deploy.instances: must be at least 1 (got 0)",
    ),
    (
        "table where a value belongs",
        BASE + "[deploy.strategy]\nname = 1\n",
        "tower.toml:3: deploy.strategy: must be one of immediate, rolling, bluegreen, canary "
        "(got a table)",
    ),
    (
        "boolean expected",
        BASE + '[budgets]\nabort_on_fail = "yes please"\n',
        'tower.toml:4: budgets.abort_on_fail: must be true or false (got "yes please")',
    ),
    (
        "invalid regular expression",
        BASE + '[env.vars.TOKEN]\nformat = "regex"\npattern = "(a"\n',
        "tower.toml:5: env.vars.TOKEN.pattern: must be a valid regular expression: "
        "missing ), unterminated subpattern at position 0",
    ),
    (
        "env variable name",
        BASE + '[env.vars."MY-VAR"]\ndescription = "x"\n',
        'tower.toml:3: env.vars.MY-VAR: variable name "MY-VAR" must be letters, digits and "_", '
        "not starting with a digit",
    ),
    (
        "cron schedule",
        BASE + '[backup]\nschedule = "every hour"\n',
        'tower.toml:4: backup.schedule: must be a cron expression like "*/15 * * * *" or '
        '"@every 15m" (got "every hour")',
    ),
    (
        "spike rule",
        BASE + '[server.error_alerts]\nspike = "lots"\n',
        'tower.toml:4: server.error_alerts.spike: must read "<count> in <duration>", '
        'e.g. "10 in 5m" (got "lots")',
    ),
    (
        "unknown key in an array of tables",
        BASE + '[[monitors]]\nname = "api"\nintervl = "30s"\n',
        'tower.toml:5: monitors[0].intervl: unknown key (did you mean "interval"?)',
    ),
    (
        "unknown key lists what is allowed",
        BASE + "[deploy.health]\nzzz = 1\n",
        "tower.toml:4: deploy.health.zzz: unknown key (allowed: consecutive, deadline, interval)",
    ),
    (
        "unknown key in an inline table",
        BASE + '[deploy]\nsteps = [{weight = "10%", pauze = "1m"}]\n',
        'tower.toml:4: deploy.steps[0].pauze: unknown key (did you mean "pause"?)',
    ),
    (
        "grade",
        BASE + '[security]\nmin_grade = "A++"\n',
        "tower.toml:4: security.min_grade: must be one of A+, A, A-, B+, B, B-, C+, C, C-, D+, "
        'D, D-, F (got "A++")',
    ),
    (
        "negative duration",
        BASE + "[health]\ntimeout = -1\n",
        "tower.toml:4: health.timeout: must be a non-negative duration (got -1)",
    ),
    (
        "string where a list belongs",
        BASE + '[[monitors]]\nname = "api"\nconditions = "status == 200"\n',
        'tower.toml:5: monitors[0].conditions: must be a list (got "status == 200")',
    ),
    (
        "table where an array of tables belongs",
        BASE + '[monitors]\nname = "x"\n',
        "tower.toml:3: monitors: must be a list (got a table)",
    ),
    (
        "incomplete budget condition",
        BASE + '[budgets]\nconditions = ["p95 <"]\n',
        'tower.toml:4: budgets.conditions[0]: invalid condition "p95 <": ends too soon',
    ),
    (
        "condition on a later line of a multi-line list",
        BASE + '[[monitors]]\nname = "api"\nconditions = [\n  "status == 200",\n'
        '  "latency <> 1s",\n]\n',
        'tower.toml:7: monitors[0].conditions[1]: invalid condition "latency <> 1s": '
        "expected a value at column 10",
    ),
    (
        "waiver reason too short",
        BASE + '[[waivers]]\ncheck = "x"\nreason = "no"\nexpires = 2026-01-01\n',
        'tower.toml:5: waivers[0].reason: must be at least 3 characters long (got "no")',
    ),
    (
        "route without channels",
        BASE + '[alerts.channels.ops]\ntype = "slack"\nurl = "https://x"\n[[alerts.routes]]\n'
        'match = {severity = "critical"}\n',
        "tower.toml:6: alerts.routes[0].channels: required key is missing",
    ),
    (
        "escalation to an unknown channel",
        BASE + '[alerts.channels.ops]\ntype = "slack"\nurl = "https://x"\n[[alerts.routes]]\n'
        'channels = ["ops"]\nescalate_to = ["pager"]\n',
        'tower.toml:8: alerts.routes[0].escalate_to: "pager" is not a channel in '
        "[alerts.channels] (defined: ops)",
    ),
    (
        "default channel undefined",
        BASE + '[alerts]\ndefault_channels = ["email"]\n',
        'tower.toml:4: alerts.default_channels: "email" is not a channel in [alerts.channels] '
        "(defined: none)",
    ),
    (
        "service name not a slug",
        '[service]\nname = "My Shop"\n',
        'tower.toml:2: service.name: must be lowercase letters, digits, "-", "_" or "." '
        '(got "My Shop")',
    ),
    (
        "fraction where a whole number belongs",
        BASE + "cpus = 1.5\n",
        "tower.toml:3: service.cpus: must be a whole number (got 1.5)",
    ),
    (
        "bad value from a variable's default",
        BASE + 'port = "${PORT:-eighty}"\n',
        "tower.toml:3: service.port: must be a whole number (got the value of ${PORT})",
    ),
    (
        "duplicate key",
        BASE + "port = 1\nport = 2\n",
        "tower.toml:4: invalid TOML: Cannot overwrite a value (column 9)",
    ),
    (
        "volume without a size",
        BASE + '[[cost.volumes]]\nname = "data"\n',
        "tower.toml:3: cost.volumes[0].size: required key is missing",
    ),
    (
        "backup heartbeat names no heartbeat monitor",
        BASE
        + '[backup]\nheartbeat = "nightly"\n[[monitors]]\nname = "backups"\ntype = "heartbeat"\n',
        'tower.toml:4: backup.heartbeat: "nightly" is not a heartbeat monitor '
        "(heartbeat monitors: backups)",
    ),
    (
        "load duration of zero",
        BASE + '[budgets]\nduration = "0s"\n',
        'tower.toml:4: budgets.duration: must be greater than 0.0 (got "0s")',
    ),
]


class TestMessages:
    def test_at_least_twenty_kinds(self) -> None:
        """The table holds at least twenty different kinds of mistake."""
        assert len({case for case, _, _ in CASES}) == len(CASES) >= 20

    @pytest.mark.parametrize(("case", "text", "expected"), CASES, ids=[c[0] for c in CASES])
    def test_bad_spec_gives_exact_message(self, case: str, text: str, expected: str) -> None:
        """Each kind of mistake yields exactly one issue whose text names file, line, key path
        and what is allowed."""
        with pytest.raises(SpecError) as caught:
            parse_spec(text, environ={})
        assert [str(issue) for issue in caught.value.issues] == [expected]

    @pytest.mark.parametrize(("case", "text", "expected"), CASES, ids=[c[0] for c in CASES])
    def test_file_name_is_the_source(
        self, case: str, text: str, expected: str, tmp_path: Path
    ) -> None:
        """Loaded from a file, each message starts with that file's path and the same line."""
        spec = tmp_path / "deploy" / "tower.toml"
        spec.parent.mkdir()
        spec.write_text(text, encoding="utf-8")
        with pytest.raises(SpecError) as caught:
            load_spec(spec, environ={})
        assert [str(issue) for issue in caught.value.issues] == [
            expected.replace("tower.toml:", f"{spec}:", 1)
        ]


class TestAllAtOnce:
    def test_every_error_at_once(self) -> None:
        """Several mistakes in one file are all reported, sorted by line."""
        text = BASE + 'port = "x"\nmemroy = 1\n[deploy]\nstrategy = "fast"\n'
        with pytest.raises(SpecError) as caught:
            parse_spec(text, environ={})
        lines = [issue.line for issue in caught.value.issues]
        assert lines == [3, 4, 6]
        assert str(caught.value).startswith("3 errors in the spec:")

    def test_all_table_mistakes_in_one_file(self) -> None:
        """Mistakes in different sections of one file are all reported together."""
        text = (
            BASE
            + 'memroy = "1gb"\nport = 70000\n[deploy]\nstrategy = "blue-green"\n'
            + '[[monitors]]\nname = "api"\ntype = "ping"\n[health]\nreadiness = "api"\n'
        )
        with pytest.raises(SpecError) as caught:
            parse_spec(text, environ={})
        assert [(issue.line, issue.path) for issue in caught.value.issues] == [
            (3, "service.memroy"),
            (4, "service.port"),
            (6, "deploy.strategy"),
            (9, "monitors[0].type"),
            (11, "health.readiness"),
        ]


class TestSecrets:
    def test_expanded_value_is_never_echoed(self) -> None:
        """A bad value that came from the environment is named by its variable, not shown."""
        text = BASE + 'port = 1\n[deploy.health]\ndeadline = "${DEADLINE}"\n'
        with pytest.raises(SpecError) as caught:
            parse_spec(text, environ={"DEADLINE": "hunter2-secret"})
        message = str(caught.value)
        assert "hunter2-secret" not in message
        assert "(got the value of ${DEADLINE})" in message

    def test_secret_from_environment_never_in_errors(self) -> None:
        """Secrets in secret fields do not appear in any error, even beside other errors."""
        text = BASE + 'port = "bad"\n[alerts.channels.ops]\ntype = "slack"\nurl = "${SLACK_URL}"\n'
        with pytest.raises(SpecError) as caught:
            parse_spec(text, environ={"SLACK_URL": "https://hooks.slack.com/services/T0/B0/SECRET"})
        assert "SECRET" not in str(caught.value)

    def test_secret_written_in_the_file_is_not_echoed(self) -> None:
        """A value typed straight into a secret field is not repeated in its error either."""
        text = BASE + '[backup]\ndatabase_url = ["postgresql://u:hunter2@db/x"]\n'
        with pytest.raises(SpecError) as caught:
            parse_spec(text, environ={})
        assert [str(issue) for issue in caught.value.issues] == [
            "tower.toml:4: backup.database_url: must be a string"
        ]

    def test_expanded_value_in_an_overlay_is_not_echoed(self) -> None:
        """An override's value from the environment is named by its variable under --env."""
        text = BASE + '[environments.production.overrides.deploy]\ninstances = "${INSTANCES}"\n'
        with pytest.raises(SpecError) as caught:
            parse_spec(text, env="production", environ={"INSTANCES": "p4ssw0rd"})
        assert [str(issue) for issue in caught.value.issues] == [
            "tower.toml:4: deploy.instances: must be a whole number (got the value of ${INSTANCES})"
        ]
