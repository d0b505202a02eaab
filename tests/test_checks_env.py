"""The env catalog: .env lint, rules, sources, parity and .env.example."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controltower.cli.main import app
from controltower.envcheck import collect, diff, example, lint, parse
from controltower.envcheck.dotenv import RULES
from controltower.envcheck.rules import check_all, is_placeholder
from controltower.envcheck.sources import Value, parse_fly_secrets
from controltower.exceptions import TowerError
from controltower.spec import parse_spec

SPEC = """
[service]
name = "shop"
target = "fly"

[environments.production]
fly_app = "shop"

[env]
files = [".env"]

[env.vars.DATABASE_URL]
secret = true
format = "url"

[env.vars.PORT]
format = "int"
required = false

[env.vars.MODE]
format = "enum"
values = ["a", "b"]
environments = ["production"]

[env.vars.STRIPE_SECRET_KEY]
secret = true

[env.vars.NEXT_PUBLIC_SUPABASE_URL]
required = false
"""


def rules_of(problems: list[object]) -> list[str]:
    return [f"{p.name}:{p.rule}" for p in problems]  # type: ignore[attr-defined]


# One line (or file) each, with the warnings dotenv-linter gives it: (text, [(line, rule)]).
DOTENV_LINTER_CASES = [
    ("FOO=BAR\n", []),
    ("_FOO=BAR\n", []),
    (".FOO=BAR\n", [(1, "LeadingCharacter")]),
    ("*FOO=BAR\n", [(1, "LeadingCharacter")]),
    ("1FOO=BAR\n", [(1, "LeadingCharacter")]),
    (" FOO=BAR\n", [(1, "LeadingCharacter")]),
    ("\tFOO=BAR\n", [(1, "LeadingCharacter")]),
    ("***F-OOBAR=BAZ\n", [(1, "LeadingCharacter"), (1, "IncorrectDelimiter")]),
    ("FOO*=BAR\n", [(1, "IncorrectDelimiter")]),
    ("FOO-BAR=FOOBAR\n", [(1, "IncorrectDelimiter")]),
    ("FOO BAR=FOOBAR\n", [(1, "IncorrectDelimiter")]),
    ("FOO-BAR\n", [(1, "IncorrectDelimiter"), (1, "KeyWithoutValue")]),
    ("FOO_BAR =FOOBAR\n", [(1, "SpaceCharacter")]),
    ("export FOO=BAR\n", []),
    ("FOO=\n", []),
    ("FOO\n", [(1, "KeyWithoutValue")]),
    ("foo_bar=FOOBAR\n", [(1, "LowercaseKey")]),
    ("FOo_BAR=FOOBAR\n", [(1, "LowercaseKey")]),
    ("DEBUG_HTTP = true\n", [(1, "SpaceCharacter")]),
    ("DEBUG_HTTP= true false\n", [(1, "SpaceCharacter"), (1, "ValueWithoutQuotes")]),
    ("DEBUG_HTTP =true\n", [(1, "SpaceCharacter")]),
    ("DEBUG_HTTP= true\n", [(1, "SpaceCharacter")]),
    ("DEBUG_HTTP=true \n", [(1, "TrailingWhitespace")]),
    ("FOO='BAR'\n", [(1, "QuoteCharacter")]),
    ('FOO="Bar"\n', [(1, "QuoteCharacter")]),
    ("FOO='B\"AR'\n", [(1, "QuoteCharacter")]),
    ("FOO='BAR BAR'\n", []),
    ('FOO="authSource=admin"\n', []),
    ('FOO="with #comment"\n', []),
    ("FOO=BAR BAZ\n", [(1, "ValueWithoutQuotes")]),
    ('FOO="BAR BAZ"\n', []),
    ("ABC=$BAR\n", []),
    ("FOO=${BAR}\n", []),
    ("ABC=${BAR\n", [(1, "SubstitutionKey")]),
    ("FOO=${BAR!}\n", [(1, "SubstitutionKey")]),
    ("XYZ=$BAR}\n", [(1, "SubstitutionKey")]),
    ("ABC=${BAR}$XYZ\n", []),
    ("BIZ=$FOO-$ABC\n", []),
    ("ABC=\\${BAR\n", []),
    ("ABC='${BAR'\n", []),
    ("FOO=BAR\nFOO=BAZ\n", [(2, "DuplicatedKey")]),
    ("FOO=BAR", [(1, "EndingBlankLine")]),
    ("A=B\n\nC=D\n", []),
    ("A=B\n\n\nC=D\n", [(3, "ExtraBlankLine")]),
    ("A=B\n\n\n\nC=D\n", [(3, "ExtraBlankLine"), (4, "ExtraBlankLine")]),
    ("A=B\n\n", [(3, "ExtraBlankLine")]),
    ("FOO=BAR\nBAR=FOO\n", [(2, "UnorderedKey")]),
    ("FOO=BAR\n\nBAR=FOO\n", []),
    ("FOO=BAR\n# dotenv-linter:off LowercaseKey\nBar=FOO\n", []),
    ("KEY=VALUE\nFOO=$KEY\nBAR=FOO\n", []),
    ("FOO=BAR\n# a comment\nBAR=FOO\n", [(3, "UnorderedKey")]),
    ("B=1\r\nA=2\r\n", [(2, "UnorderedKey")]),
    ('A="one\ntwo three"\nB=1\n', []),
    (
        'A="one\ntwo\nB=1\n',
        [(1, "QuoteCharacter"), (2, "KeyWithoutValue"), (2, "LowercaseKey"), (3, "UnorderedKey")],
    ),
    ("# dotenv-linter:off DuplicatedKey\nA=1\nA=2\n# dotenv-linter:on DuplicatedKey\nA=3\n", [(5, "DuplicatedKey")]),
    ("#comment \nA=1\n", []),
]  # fmt: skip


class TestLint:
    @pytest.mark.parametrize(
        ("text", "expected"),
        DOTENV_LINTER_CASES,
        ids=[repr(c[0])[:40] for c in DOTENV_LINTER_CASES],
    )
    def test_dotenv_linter_semantics(self, text: str, expected: list[tuple[int, str]]) -> None:
        """Each case gets exactly the warnings dotenv-linter gives it, at the same lines."""
        found = sorted((p.line, p.rule) for p in lint(text, ".env"))
        assert found == sorted(expected)

    def test_every_dotenv_linter_rule_is_covered(self) -> None:
        """The cases above exercise every rule dotenv-linter has, SchemaViolation aside."""
        fired = {rule for text, expected in DOTENV_LINTER_CASES for _, rule in expected}
        assert fired == set(RULES) - {"SchemaViolation"}

    def test_messages_and_warnings(self) -> None:
        """Messages follow dotenv-linter's; only UnorderedKey is a warning."""
        problems = lint("B=1\nA=2\n\nA=3\nc=4\n", ".env")
        assert [str(p) for p in problems] == [
            ".env:2 UnorderedKey: The A key should go before the B key",
            ".env:4 DuplicatedKey: The A key is duplicated",
            ".env:5 LowercaseKey: The c key should be in uppercase",
        ]
        assert [p.warning for p in problems] == [True, False, False]

    def test_schema_violation_from_the_catalog(self) -> None:
        """With the catalog, a value that breaks its format is a SchemaViolation; an unknown key a warning."""
        spec = parse_spec(SPEC)
        text = "DATABASE_URL=nope\nPORT=80a\nSTRIPE_SECRET_KEY=[YOUR_KEY]\nZZZ=1\n"
        problems = lint(text, ".env", catalog=spec.env.vars)
        assert [(p.line, p.rule, p.warning) for p in problems] == [
            (1, "SchemaViolation", False),
            (2, "SchemaViolation", False),
            (4, "SchemaViolation", True),
        ]
        assert "DATABASE_URL key is not a URL" in problems[0].message
        assert "nope" not in problems[0].message

    def test_multiline_values_are_read_whole(self) -> None:
        """A quoted value may span lines; parse gives it whole, at its first line."""
        entries = parse("A=\"line one\nline two\"\nB=2 # note\nexport C='x y'\n")
        assert [(e.key, e.value, e.line) for e in entries] == [
            ("A", "line one\nline two", 1),
            ("B", "2", 3),
            ("C", "x y", 4),
        ]

    def test_clean_file(self) -> None:
        """A sorted, well-formed file with export and quoted spaces has no problems."""
        text = '# comment\nexport A=1\nB="two words"\nC=${A}\n'
        assert lint(text, ".env") == []


class TestRules:
    def spec(self) -> object:
        return parse_spec(SPEC, env="production")

    def test_placeholders(self) -> None:
        """Bracketed keys, changeme, xxx and empty values are placeholders."""
        for value in ("[YOUR_KEY]", "changeme", "xxx", "", "<api-key>", "your-key-here"):
            assert is_placeholder(value), value
        assert not is_placeholder("sk_test_abc")

    def test_required_format_enum_and_environments(self) -> None:
        """Missing required variables, bad formats and enum values are reported by name."""
        spec = parse_spec(SPEC, env="production")
        values = {
            "DATABASE_URL": Value("DATABASE_URL", "nope", ".env", 1),
            "PORT": Value("PORT", "80a", ".env", 2),
            "MODE": Value("MODE", "c", ".env", 3),
        }
        results = check_all(spec, values, "production", True)
        assert rules_of(results["required"]) == ["STRIPE_SECRET_KEY:required"]
        assert sorted(rules_of(results["format"])) == [
            "DATABASE_URL:format",
            "MODE:format",
            "PORT:format",
        ]
        staging = check_all(spec, {}, "staging", False)
        assert "MODE:required" not in rules_of(staging["required"])

    def test_client_secret_by_catalog_name_and_value(self) -> None:
        """A client prefix on a catalog secret, a secret-like name or a server key shape is caught."""
        spec = parse_spec(SPEC)
        values = {
            "NEXT_PUBLIC_STRIPE_SECRET_KEY": Value("NEXT_PUBLIC_STRIPE_SECRET_KEY", "x", ".env"),
            "NEXT_PUBLIC_DB_PASSWORD": Value("NEXT_PUBLIC_DB_PASSWORD", "x", ".env"),
            "NEXT_PUBLIC_THING": Value("NEXT_PUBLIC_THING", "sk_live_abc", ".env"),
            "NEXT_PUBLIC_POSTHOG_KEY": Value("NEXT_PUBLIC_POSTHOG_KEY", "phc_abc", ".env"),
        }
        names = [p.name for p in check_all(spec, values, None, False)["client_secret"]]
        assert names == [
            "NEXT_PUBLIC_DB_PASSWORD",
            "NEXT_PUBLIC_STRIPE_SECRET_KEY",
            "NEXT_PUBLIC_THING",
        ]

    def test_key_shapes(self) -> None:
        """Stripe live keys outside production, test keys in production, bad PostHog and Supabase forms fail."""
        values = {
            "STRIPE_SECRET_KEY": Value("STRIPE_SECRET_KEY", "sk_test_abc", ".env"),
            "POSTHOG_KEY": Value("POSTHOG_KEY", "abc", ".env"),
            "NEXT_PUBLIC_SUPABASE_URL": Value(
                "NEXT_PUBLIC_SUPABASE_URL", "https://example.com", ".env"
            ),
        }
        spec = parse_spec(SPEC)
        production = rules_of(check_all(spec, values, "production", True)["key_shape"])
        assert production == [
            "NEXT_PUBLIC_SUPABASE_URL:key_shape",
            "POSTHOG_KEY:key_shape",
            "STRIPE_SECRET_KEY:key_shape",
        ]
        values["STRIPE_SECRET_KEY"] = Value("STRIPE_SECRET_KEY", "sk_live_abc", ".env")
        values["NEXT_PUBLIC_SUPABASE_URL"] = Value(
            "NEXT_PUBLIC_SUPABASE_URL", "https://abcdefghijklmnopqrst.supabase.co", ".env"
        )
        values["POSTHOG_KEY"] = Value("POSTHOG_KEY", "phc_abc", ".env")
        assert rules_of(check_all(spec, values, "staging", False)["key_shape"]) == [
            "STRIPE_SECRET_KEY:key_shape"
        ]
        assert check_all(spec, values, "production", True)["key_shape"] == []


class TestSources:
    def test_fly_secrets_names_only(self, tmp_path: Path) -> None:
        """fly secrets JSON gives names; values stay unknown."""
        found = parse_fly_secrets(
            '[{"Name": "STRIPE_SECRET_KEY", "Digest": "abc", "CreatedAt": "2026-01-01"}]', "fly"
        )
        assert found["STRIPE_SECRET_KEY"].value is None

    def test_fly_secrets_file_and_command(self, tmp_path: Path) -> None:
        """Secrets come from a file (with {env}) or a command (with {app}) in the spec."""
        (tmp_path / "secrets-production.json").write_text(
            json.dumps([{"Name": "STRIPE_SECRET_KEY"}])
        )
        spec = parse_spec(
            SPEC.replace(
                'files = [".env"]', 'files = [".env"]\nfly_secrets_file = "secrets-{env}.json"'
            ),
            env="production",
        )
        assert "STRIPE_SECRET_KEY" in collect(spec, tmp_path, "production")
        script = tmp_path / "fake_fly.py"
        script.write_text(
            "import json, sys\nprint(json.dumps([{'Name': 'APP_' + sys.argv[1].upper()}]))\n"
        )
        command = f"{sys.executable} {script} {{app}}"
        spec = parse_spec(
            SPEC.replace(
                'files = [".env"]', f'files = [".env"]\nfly_secrets_command = "{command}"'
            ),
            env="production",
        )
        assert "APP_SHOP" in collect(spec, tmp_path, "production")

    def test_process_environment_wins(self, tmp_path: Path) -> None:
        """The process environment overrides files for catalog names."""
        (tmp_path / ".env").write_text("DATABASE_URL=postgres://file\n")
        spec = parse_spec(SPEC)
        found = collect(
            spec, tmp_path, None, {"DATABASE_URL": "postgres://process", "UNRELATED": "x"}
        )
        assert found["DATABASE_URL"].source == "process environment" and "UNRELATED" not in found


class TestParityAndExample:
    def test_diff_reports_shapes_never_values(self) -> None:
        """diff lists one-sided names and format changes, with shapes only."""
        a = {
            "A": Value("A", "sk_test_1", "x"),
            "B": Value("B", "http://x", "x"),
            "C": Value("C", "1", "x"),
        }
        b = {
            "A": Value("A", "sk_live_2", "y"),
            "B": Value("B", "not a url", "y"),
            "D": Value("D", None, "fly"),
        }
        result = {d.name: d for d in diff(a, b)}
        assert set(result) == {"B", "C", "D"}
        assert (result["B"].kind, result["B"].a, result["B"].b) == ("format", "http url", "string")
        assert result["C"].kind == "only_in_a" and result["D"].kind == "only_in_b"
        assert "sk_live_2" not in repr(result)

    def test_example(self) -> None:
        """.env.example lists every variable with notes and no secret value."""
        text = example(parse_spec(SPEC))
        assert "DATABASE_URL=\n" in text and "# (required; secret; url)" in text
        assert "MODE=" in text and "enum: a|b" in text
        assert lint(text, ".env.example") == []


class TestCli:
    def test_env_commands(self, tmp_path: Path) -> None:
        """env check, diff, example and lint run end to end with documented exit codes."""
        (tmp_path / "tower.toml").write_text(SPEC)
        (tmp_path / ".env").write_text(
            "DATABASE_URL=postgres://db/x\nSTRIPE_SECRET_KEY=[YOUR_KEY]\n"
        )
        (tmp_path / ".env.production").write_text("MODE=a\n")
        (tmp_path / ".env.staging").write_text("MODE=zzz\nEXTRA=1\n")
        runner = CliRunner()
        spec = ["--spec", str(tmp_path / "tower.toml")]
        result = runner.invoke(
            app, ["env", "check", *spec, "--env", "production", "--format", "json"]
        )
        assert result.exit_code == 1, result.output
        problems = json.loads(result.output)["problems"]
        assert [p["name"] for p in problems] == ["STRIPE_SECRET_KEY"]
        assert "[YOUR_KEY]" not in result.output
        result = runner.invoke(
            app, ["env", "diff", "staging", "production", *spec, "--format", "json"]
        )
        assert result.exit_code == 1
        assert [d["name"] for d in json.loads(result.output)["differences"]] == ["EXTRA"]
        result = runner.invoke(app, ["env", "example", *spec])
        assert result.exit_code == 0 and (tmp_path / ".env.example").is_file()
        result = runner.invoke(app, ["env", "lint", *spec])
        assert (
            result.exit_code == 1
            and "SchemaViolation: The MODE key is not one of a, b" in result.output
        )
        assert "zzz" not in result.output
        (tmp_path / ".env.staging").write_text("EXTRA=1\nMODE=b\n")
        result = runner.invoke(app, ["env", "lint", *spec, "--format", "json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["ok"] and {p["rule"] for p in report["problems"]} == {"SchemaViolation"}
        result = runner.invoke(app, ["env", "lint", *spec, "--skip", "Nope"])
        assert isinstance(result.exception, TowerError) and result.exception.exit_code == 2
        (tmp_path / ".env").write_text("a = 1\n")
        assert runner.invoke(app, ["env", "lint", *spec]).exit_code == 1

    def test_diff_never_prints_a_value(self, tmp_path: Path) -> None:
        """env diff reports presence and shape per variable, in text and JSON, and no value at all."""
        (tmp_path / "tower.toml").write_text(
            SPEC.replace('files = [".env"]', 'files = []\nfly_secrets_file = "secrets-{env}.json"')
        )
        secrets = {
            "staging": "DATABASE_URL=postgres://u:hunter2@db-staging/x\nSTRIPE_SECRET_KEY=sk_test_51Hsecretvalue\nPORT=3000\n",
            "production": "DATABASE_URL=not-a-url-hunter3\nSTRIPE_SECRET_KEY=sk_live_51Hsecretvalue\n",
        }
        for env, text in secrets.items():
            (tmp_path / f".env.{env}").write_text(text)
        (tmp_path / "secrets-production.json").write_text(
            json.dumps([{"name": "SENTRY_DSN", "digest": "0f3c", "status": "Deployed"}])
        )
        runner = CliRunner()
        spec = ["--spec", str(tmp_path / "tower.toml")]
        text = runner.invoke(app, ["env", "diff", "staging", "production", *spec])
        data = runner.invoke(
            app, ["env", "diff", "staging", "production", *spec, "--format", "json"]
        )
        assert text.exit_code == data.exit_code == 1
        for output in (text.output, data.output):
            for value in ("hunter2", "hunter3", "51Hsecretvalue", "3000", "db-staging", "0f3c"):
                assert value not in output, value
        differences = {d["name"]: d for d in json.loads(data.output)["differences"]}
        assert differences["DATABASE_URL"] == {
            "name": "DATABASE_URL",
            "kind": "format",
            "a": "postgres url",
            "b": "string",
        }
        assert differences["PORT"]["kind"] == "only_in_a" and differences["PORT"]["a"] == "int"
        assert differences["SENTRY_DSN"]["b"] == "set (value unknown)"
        assert "STRIPE_SECRET_KEY" not in differences  # sk_test_ and sk_live_ are the same family
        assert "only in staging" in text.output and "different format" in text.output
