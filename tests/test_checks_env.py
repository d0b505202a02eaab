"""The env catalog: .env lint, rules, sources, parity and .env.example."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from controltower.cli.main import app
from controltower.envcheck import collect, diff, example, lint
from controltower.envcheck.rules import check_all, is_placeholder
from controltower.envcheck.sources import Value, parse_fly_secrets
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


class TestLint:
    def test_every_rule(self) -> None:
        """Each dotenv-linter rule fires on its own line."""
        text = (
            "B=1\n"
            "A=2\n"  # UnorderedKey
            "A=3\n"  # DuplicatedKey
            "lower=1\n"  # LowercaseKey (+ unordered)
            "FOO-BAR=1\n"  # IncorrectDelimiter
            "1ST=1\n"  # LeadingCharacter
            "KEY \n"  # KeyWithoutValue + TrailingWhitespace
            "SPACED = 1\n"  # SpaceCharacter
            'QUOTED="plain"\n'  # QuoteCharacter
            "WORDS=two words\n"  # ValueWithoutQuotes
            "SUB=${OOPS\n"  # SubstitutionKey
            "\n\n"  # ExtraBlankLine
            "Z=1"  # EndingBlankLine
        )
        found = {(p.line, p.rule) for p in lint(text, ".env")}
        expected = {
            (2, "UnorderedKey"), (3, "DuplicatedKey"), (4, "LowercaseKey"), (5, "IncorrectDelimiter"),
            (6, "LeadingCharacter"), (7, "KeyWithoutValue"), (7, "TrailingWhitespace"), (8, "SpaceCharacter"),
            (9, "QuoteCharacter"), (10, "ValueWithoutQuotes"), (11, "SubstitutionKey"), (13, "ExtraBlankLine"),
            (14, "EndingBlankLine"),
        }  # fmt: skip
        assert expected <= found, expected - found

    def test_clean_file(self) -> None:
        """A sorted, well-formed file with export and quoted spaces has no problems."""
        text = '# comment\nexport A=1\nB="two words"\nC=${A}\n'
        assert lint(text, ".env") == []

    def test_unordered_is_a_warning(self) -> None:
        """Unordered keys are warnings, not problems."""
        problems = lint("B=1\nA=1\n", ".env")
        assert [p.warning for p in problems] == [True]


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
        assert result.exit_code == 0, result.output
        (tmp_path / ".env").write_text("a = 1\n")
        assert runner.invoke(app, ["env", "lint", *spec]).exit_code == 1
