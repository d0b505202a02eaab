"""A GitHub Actions workflow: test against PostgreSQL, gate, deploy, check after deploying.

Secrets are referenced by name (``${{ secrets.NAME }}``), never written in.
Third-party actions are pinned to a major version tag.
"""

from __future__ import annotations

from controltower.__about__ import __version__
from controltower.generate.common import POSTGRES_IMAGE, App
from controltower.generate.files import GeneratedFile
from controltower.spec import Spec
from controltower.spec.deploy import DriverName
from controltower.spec.service import Target

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


def _python_install(app: App) -> str:
    if app.package_manager == "poetry" or app.lockfile == "poetry.lock":
        return "python -m pip install poetry==1.8.5 && poetry install --no-interaction"
    if (app.root / "requirements.txt").is_file():
        return "python -m pip install -r requirements.txt pytest"
    return "python -m pip install . pytest"


VERCEL_CLI = "58.10.0"


def _vercel_deploy(spec: Spec, env_flag: str) -> list[str]:
    """The deploy job's env and steps for the vercel driver.

    ``source = "prebuilt"``: `vercel pull` and `vercel build --prod` write
    .vercel/output with the production settings, which tower uploads; ``git``:
    Vercel builds the pushed commit. Either way tower makes a staged production
    deployment, gates it on health, then promotes (docs/deploy.md, Vercel).
    """
    vercel = spec.deploy.vercel
    lines = [
        "    env:",
        f"      {vercel.token_env}: ${{{{ secrets.{vercel.token_env} }}}}",
        f"      {vercel.bypass_env}: ${{{{ secrets.{vercel.bypass_env} }}}}",
        "      VERCEL_ORG_ID: ${{ vars.VERCEL_ORG_ID }}",
        "      VERCEL_PROJECT_ID: ${{ vars.VERCEL_PROJECT_ID }}",
        *_env_lines(spec, 6),
        "    steps:",
        "      - uses: actions/checkout@v4",
        *_install_tower(),
    ]
    if vercel.source == "prebuilt":
        lines += [
            "      - uses: actions/setup-node@v4",
            "        with:",
            '          node-version: "22"',
            f"      - run: npm install --global vercel@{VERCEL_CLI}",
            "      - name: production settings and variables from Vercel",
            f'        run: vercel pull --yes --environment=production --token="${vercel.token_env}"',
            "      - name: build .vercel/output for production",
            f'        run: vercel build --prod --token="${vercel.token_env}"',
        ]
    lines += [
        "      - name: staged deployment, health gate, promote or rolling release (vercel driver)",
        f'        run: tower deploy --version "${{{{ github.sha }}}}"{env_flag}',
    ]
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
        "      - run: " + _python_install(app),
        "      - name: tests (when the repository has them)",
        "        run: if [ -d tests ]; then python -m pytest -q; fi",
    ]


def _install_tower() -> list[str]:
    return [
        "      - uses: actions/setup-python@v5",
        "        with:",
        '          python-version: "3.12"',
        f'      - run: python -m pip install "controltower=={__version__}"',
    ]


def github_actions(
    spec: Spec, app: App, *, path: str = ".github/workflows/tower.yml"
) -> GeneratedFile:
    """Test, a static gate that can pass before the first deploy (SARIF to code scanning), then
    the platform's deploy: on Fly the image is built and pushed by Fly's remote builder and
    ``tower deploy --image`` rolls it out; elsewhere the exec driver runs [deploy.exec]."""
    environment = "production" if "production" in spec.environments else (spec.environment or "")
    env_flag = f" --env {environment}" if environment else ""
    driver = spec.deploy.driver
    lines = [
        f"# CI/CD for {app.name}, written by `tower generate github-actions` (tower {__version__}).",
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
        "    # Static checks only: they judge the repository, so they pass before the first deploy.",
        "    needs: test",
        "    runs-on: ubuntu-24.04",
        "    timeout-minutes: 15",
        "    permissions:",
        "      contents: read",
        "      security-events: write",
        "    steps:",
        "      - uses: actions/checkout@v4",
        *_install_tower(),
        "      - name: readiness gate (static)",
        f"        run: tower check --static --gate 2{env_flag} --no-store --format sarif --output tower.sarif",
    ]
    env = _env_lines(spec, 10)
    if env:
        lines += ["        env:", *env]
    lines += [
        "      - name: upload the findings to code scanning",
        "        if: always()",
        "        uses: github/codeql-action/upload-sarif@v3",
        "        with:",
        "          sarif_file: tower.sarif",
        "          category: tower",
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
    ]
    if driver is DriverName.FLY:
        token = spec.deploy.fly.token_env
        image = f"registry.fly.io/{app.fly_app}:${{{{ github.sha }}}}"
        lines += [
            "    env:",
            f"      {token}: ${{{{ secrets.{token} }}}}",
            *_env_lines(spec, 6),
            "    steps:",
            "      - uses: actions/checkout@v4",
            *_install_tower(),
            "      - uses: superfly/flyctl-actions/setup-flyctl@1.6",
            "      - name: build the image on Fly's remote builder and push it",
            f"        run: flyctl deploy --build-only --push --remote-only -a {app.fly_app} "
            '--image-label "${{ github.sha }}"'
            + (
                ' --build-arg "NEXT_DEPLOYMENT_ID=${{ github.sha }}"'
                if spec.service.stack.value == "nextjs"
                else ""
            ),
            "      - name: roll out with health gates and automatic rollback (fly driver)",
            f'        run: tower deploy --image "{image}"{env_flag}',
        ]
    elif driver is DriverName.VERCEL:
        lines += _vercel_deploy(spec, env_flag)
    else:
        extra = (
            ["      VERCEL_TOKEN: ${{ secrets.VERCEL_TOKEN }}"]
            if app.target is Target.VERCEL
            else []
        )
        deploy_env = [*extra, *_env_lines(spec, 6)]
        lines += [
            *(["    env:", *deploy_env] if deploy_env else []),
            "    steps:",
            "      - uses: actions/checkout@v4",
            *_install_tower(),
        ]
        if app.target is Target.VERCEL:
            lines += [
                "      - uses: actions/setup-node@v4",
                "        with:",
                '          node-version: "22"',
            ]
        lines += [
            f"      - name: deploy with the {driver.value} driver ([deploy.{driver.value}] in tower.toml)",
            f"        run: tower deploy{env_flag}",
        ]
    lines += [
        "      - name: check after deploy",
        f"        run: tower check{env_flag}",
        "",
    ]
    return GeneratedFile(path, "\n".join(lines), generator="github-actions")
