"""A GitHub Actions workflow: test against PostgreSQL, gate, deploy, check after deploying.

Secrets are referenced by name (``${{ secrets.NAME }}``), never written in.
Third-party actions are pinned to a major version tag.
"""

from __future__ import annotations

from controltower.generate.common import POSTGRES_IMAGE, App
from controltower.generate.files import GeneratedFile
from controltower.spec import Spec
from controltower.spec.deploy import DriverName

_SETUP_NODE = {
    "npm": ("npm ci", "npm"),
    "pnpm": ("corepack enable pnpm && pnpm install --frozen-lockfile", "pnpm"),
    "yarn": ("corepack enable yarn && yarn install --immutable", "yarn"),
}


def _env_lines(spec: Spec, indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for name, var in sorted(spec.env.vars.items()):
        source = "secrets" if var.secret else "vars"
        lines.append(f"{pad}{name}: ${{{{ {source}.{name} }}}}")
    return lines


def _test_steps(app: App) -> list[str]:
    if app.is_node:
        install, cache = _SETUP_NODE[app.package_manager]
        run = "npm run" if app.package_manager == "npm" else f"{app.package_manager} run"
        return [
            "      - uses: actions/setup-node@v4",
            "        with:",
            '          node-version: "22"',
            f"          cache: {cache}",
            f"      - run: {install}",
            f"      - run: {run} lint --if-present",
            f"      - run: {run} test --if-present",
            f"      - run: {run} build",
        ]
    return [
        "      - uses: actions/setup-python@v5",
        "        with:",
        '          python-version: "3.12"',
        "          cache: pip",
        "      - run: python -m pip install -r requirements.txt pytest",
        "      - run: python -m pytest -q",
    ]


def github_actions(
    spec: Spec, app: App, *, path: str = ".github/workflows/tower.yml"
) -> GeneratedFile:
    environment = "production" if "production" in spec.environments else (spec.environment or "")
    env_flag = f" --env {environment}" if environment else ""
    fly = spec.deploy.driver is DriverName.FLY
    lines = [
        f"# CI/CD for {app.name}, written by `tower generate github-actions`.",
        "# Secrets are referenced by name: add them under Settings > Secrets and variables.",
        "name: tower",
        "",
        "on:",
        "  push:",
        "    branches: [main]",
        "  pull_request:",
        "",
        "permissions:",
        "  contents: read",
        "",
        "concurrency:",
        "  group: tower-${{ github.ref }}",
        "  cancel-in-progress: ${{ github.event_name == 'pull_request' }}",
        "",
        "jobs:",
        "  test:",
        "    runs-on: ubuntu-24.04",
        "    timeout-minutes: 20",
        "    services:",
        "      postgres:",
        f"        image: {POSTGRES_IMAGE}",
        "        env:",
        "          POSTGRES_USER: ci",
        "          POSTGRES_PASSWORD: ci  # a throwaway container that lives for this job only",
        "          POSTGRES_DB: app_test",
        "        ports:",
        '          - "5432:5432"',
        "        options: >-",
        '          --health-cmd "pg_isready -U ci -d app_test"',
        "          --health-interval 5s --health-timeout 5s --health-retries 10",
        "    env:",
        "      DATABASE_URL: postgresql://ci:ci@localhost:5432/app_test",
        "    steps:",
        "      - uses: actions/checkout@v4",
        *_test_steps(app),
        "",
        "  gate:",
        "    needs: test",
        "    runs-on: ubuntu-24.04",
        "    timeout-minutes: 15",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        '          python-version: "3.12"',
        "      - run: python -m pip install controltower",
        f"      - run: tower check --gate 2{env_flag}",
        "        env:",
        *_env_lines(spec, 10),
        "",
        "  deploy:",
        "    needs: gate",
        "    if: github.event_name == 'push' && github.ref == 'refs/heads/main'",
        "    runs-on: ubuntu-24.04",
        "    timeout-minutes: 30",
        f"    environment: {environment or 'production'}",
        "    concurrency:",
        "      group: deploy-production",
        "      cancel-in-progress: false",
        "    env:",
        f"      {spec.deploy.fly.token_env}: ${{{{ secrets.{spec.deploy.fly.token_env} }}}}",
        *_env_lines(spec, 6),
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        '          python-version: "3.12"',
        "      - run: python -m pip install controltower",
    ]
    if fly:
        lines += [
            "      - uses: superfly/flyctl-actions/setup-flyctl@v1",
            "      - name: deploy (build on Fly, migrate with release_command, roll out)",
            "        run: flyctl deploy --remote-only",
        ]
    else:
        lines += [
            "      - name: deploy",
            f"        run: tower deploy{env_flag}",
        ]
    lines += [
        "      - name: check after deploy",
        f"        run: tower check{env_flag}",
        "",
    ]
    return GeneratedFile(path, "\n".join(lines))
