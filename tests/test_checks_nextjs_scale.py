"""Next.js on several instances: the Server Actions key, deploymentId, the ISR cache handler,
and the builds the running service shows (the real fixture app behind tower's proxy)."""

from __future__ import annotations

import asyncio
import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from controltower.checks import CheckContext, Status, run_checks, select
from controltower.checks.live import nextbuilds
from controltower.checks.live.nextbuilds import observe
from controltower.checks.model import Finding
from controltower.checks.static.nextscale import KEY, valid_key
from controltower.deploy.local.proxy import Proxy, Target
from controltower.spec import load_spec
from tests.nextjs_support import NextBuild, build_or_fail, slow_build, start_next

GOOD_KEY = base64.b64encode(bytes(range(32))).decode()
ACTION = '"use server";\n\nexport async function order(form: FormData) {\n  return form;\n}\n'


def make_repo(
    root: Path,
    *,
    instances: int = 2,
    strategy: str = "rolling",
    target: str = "docker",
    config: str = "module.exports = { output: 'standalone' };\n",
    files: dict[str, str] | None = None,
    overrides: str = "",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tower.toml").write_text(
        f'[service]\nname = "shop"\nstack = "nextjs"\ntarget = "{target}"\nport = 3000\n\n'
        f'[deploy]\ninstances = {instances}\nstrategy = "{strategy}"\n'
        '\n[environments.production]\nurl = "https://shop.example.com"\n' + overrides
    )
    (root / "next.config.js").write_text(config)
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def finding(
    root: Path,
    check_id: str,
    environ: dict[str, str] | None = None,
    url: str | None = None,
    env: str | None = None,
) -> Finding:
    spec = load_spec(root / "tower.toml", env=env)

    async def go() -> Finding:
        async with httpx.AsyncClient(timeout=30) as client:
            ctx = CheckContext(
                spec=spec,
                root=root,
                url=url,
                client=client if url else None,
                environment=env,
                environ=environ or {},
            )
            run = await run_checks(ctx, select([check_id]))
        return next(f for f in run.findings if f.id == check_id)

    return asyncio.run(go())


class TestServerActionsKey:
    def test_actions_without_a_key_fail_at_the_directive(self, tmp_path: Path) -> None:
        """Server Actions served by two instances with no NEXT_SERVER_ACTIONS_ENCRYPTION_KEY
        fail, located at the "use server" line, with the command that draws a key."""
        repo = make_repo(tmp_path, files={"app/actions.ts": "// orders\n" + ACTION})
        found = finding(repo, "next.server_actions_key")
        assert found.status is Status.FAIL
        assert KEY in found.message and "2 instances" in found.message
        assert str(found.location) == "app/actions.ts:2"
        assert found.fix is not None and "openssl rand -base64 32" in found.fix.lines

    def test_a_valid_key_passes_and_is_never_shown(self, tmp_path: Path) -> None:
        """A base64 32-byte key in .env passes; its value appears nowhere in the finding."""
        repo = make_repo(tmp_path, files={"app/actions.ts": ACTION, ".env": f"{KEY}={GOOD_KEY}\n"})
        (repo / "tower.toml").write_text(
            (repo / "tower.toml").read_text() + '\n[env]\nfiles = [".env"]\n'
        )
        found = finding(repo, "next.server_actions_key")
        assert found.status is Status.PASS, found.message
        assert GOOD_KEY not in repr(found.to_dict())

    def test_a_key_of_the_wrong_length_fails(self, tmp_path: Path) -> None:
        """Next.js wants base64 of 16, 24 or 32 bytes: a 20-byte key or plain text fails, and the
        message never carries the value."""
        assert valid_key(GOOD_KEY) and valid_key(base64.b64encode(b"k" * 16).decode())
        bad = base64.b64encode(b"k" * 20).decode()
        assert not valid_key(bad) and not valid_key("change-me")
        repo = make_repo(tmp_path, files={"app/actions.ts": ACTION})
        found = finding(repo, "next.server_actions_key", environ={KEY: bad})
        assert found.status is Status.FAIL and "16, 24 or 32" in found.message
        assert bad not in repr(found.to_dict())

    def test_the_dockerfile_must_pass_the_key_to_the_build(self, tmp_path: Path) -> None:
        """Next.js embeds the key at build time: a Dockerfile that never names it fails; one that
        mounts it as a build secret passes."""
        repo = make_repo(
            tmp_path,
            files={
                "app/actions.ts": ACTION,
                "Dockerfile": "FROM node:22-slim\nRUN npm run build\n",
            },
        )
        found = finding(repo, "next.server_actions_key", environ={KEY: GOOD_KEY})
        assert found.status is Status.FAIL and "build" in found.message
        assert found.fix is not None and "--mount=type=secret" in found.fix.lines
        (repo / "Dockerfile").write_text(
            f"FROM node:22-slim\nRUN --mount=type=secret,id={KEY} \\\n"
            f'    {KEY}="$(cat /run/secrets/{KEY})" npm run build\n'
        )
        assert finding(repo, "next.server_actions_key", environ={KEY: GOOD_KEY}).status is (
            Status.PASS
        )

    def test_only_where_it_matters(self, tmp_path: Path) -> None:
        """No Server Actions (a commented-out directive does not count), one instance with an
        immediate deploy, or Vercel: the check is skipped."""
        repo = make_repo(tmp_path / "a", files={"app/page.tsx": '// "use server";\nexport {};\n'})
        assert finding(repo, "next.server_actions_key").status is Status.SKIP
        repo = make_repo(
            tmp_path / "b", instances=1, strategy="immediate", files={"app/a.ts": ACTION}
        )
        assert finding(repo, "next.server_actions_key").status is Status.SKIP
        repo = make_repo(tmp_path / "c", target="vercel", files={"app/a.ts": ACTION})
        assert finding(repo, "next.server_actions_key").status is Status.SKIP

    def test_a_canary_in_one_environment_is_enough(self, tmp_path: Path) -> None:
        """One instance in the base spec, but production deploys by canary: two builds serve at
        once, so the key is required."""
        repo = make_repo(
            tmp_path,
            instances=1,
            strategy="immediate",
            files={"app/a.ts": ACTION},
            overrides='[environments.production.overrides.deploy]\nstrategy = "canary"\n',
        )
        found = finding(repo, "next.server_actions_key")
        assert found.status is Status.FAIL and "canary" in found.message


class TestDeploymentId:
    def test_missing_with_two_instances_fails(self, tmp_path: Path) -> None:
        """Two instances and no deploymentId: a failure at gate 3 with the line to add."""
        found = finding(make_repo(tmp_path), "next.deployment_id")
        assert found.status is Status.FAIL and found.gate == 3
        assert found.fix is not None and "deploymentId:" in found.fix.lines

    def test_set_as_property_shorthand_or_environment(self, tmp_path: Path) -> None:
        """deploymentId as a property or shorthand passes; commented out it does not;
        NEXT_DEPLOYMENT_ID in the environment passes (Next.js reads it at build)."""
        for config, status in (
            (
                "module.exports = {\n  deploymentId: process.env.GIT_SHA,\n};\n",
                Status.PASS,
            ),
            (
                "const deploymentId = process.env.GIT_SHA;\nexport default { deploymentId };\n",
                Status.PASS,
            ),
            ("module.exports = {\n  // deploymentId: 'x',\n};\n", Status.FAIL),
        ):
            repo = make_repo(tmp_path, config=config)
            assert finding(repo, "next.deployment_id").status is status, config
        repo = make_repo(tmp_path, config="module.exports = {};\n")
        found = finding(repo, "next.deployment_id", environ={"NEXT_DEPLOYMENT_ID": "abc123"})
        assert found.status is Status.PASS and "abc123" not in found.message

    def test_a_dockerfile_arg_names_the_build(self, tmp_path: Path) -> None:
        """`ARG NEXT_DEPLOYMENT_ID` in the Dockerfile (what `tower generate dockerfile` writes,
        the workflow passing --build-arg) passes, with the line."""
        repo = make_repo(
            tmp_path,
            files={"Dockerfile": "FROM node:22-slim AS build\nARG NEXT_DEPLOYMENT_ID\n"},
        )
        found = finding(repo, "next.deployment_id")
        assert found.status is Status.PASS and "Dockerfile:2" in found.message

    def test_one_instance_is_skipped(self, tmp_path: Path) -> None:
        """A single instance deployed in place does not need it."""
        repo = make_repo(tmp_path, instances=1, strategy="immediate")
        assert finding(repo, "next.deployment_id").status is Status.SKIP


class TestCacheHandler:
    def test_isr_without_a_handler_fails(self, tmp_path: Path) -> None:
        """`export const revalidate = 60`, fetch's `next: { revalidate }`, revalidatePath: each
        is ISR or the data cache; without cacheHandler the check fails at the first use."""
        for text in (
            "export const revalidate = 60;\nexport default function Page() {}\n",
            "const r = await fetch(u, { next: { revalidate: 3600 } });\n",
            "import { revalidatePath } from 'next/cache';\nrevalidatePath('/');\n",
        ):
            repo = make_repo(tmp_path, files={"app/page.tsx": text})
            found = finding(repo, "next.cache_handler")
            assert found.status is Status.FAIL, text
            assert str(found.location).startswith("app/page.tsx:")
            assert found.fix is not None and "cacheHandler" in found.fix.lines

    def test_a_handler_passes_and_no_isr_skips(self, tmp_path: Path) -> None:
        """cacheHandler in next.config passes; `revalidate = 0` (always dynamic) is no ISR."""
        isr = {"app/page.tsx": "export const revalidate = 60;\n"}
        config = "module.exports = {\n  cacheHandler: require.resolve('./cache.js'),\n};\n"
        repo = make_repo(tmp_path / "a", config=config, files=isr)
        assert finding(repo, "next.cache_handler").status is Status.PASS
        repo = make_repo(tmp_path / "b", files={"app/page.tsx": "export const revalidate = 0;\n"})
        assert finding(repo, "next.cache_handler").status is Status.SKIP


PAGE = (
    '<!DOCTYPE html><html lang="en"{dpl}><head></head><body><script>self.__next_f.push([1,'
    '"0:{{\\"P\\":null,\\"b\\":\\"{build}\\",\\"p\\":\\"\\"}}"])</script></body></html>'
)


class TestObserve:
    def test_reads_build_and_deployment_ids(self) -> None:
        """The App Router's flight payload gives the build id; data-dpl-id or the
        x-nextjs-deployment-id header gives the deployment id."""
        html = PAGE.format(dpl=' data-dpl-id="rel-7"', build="Pw8TpSO0Vpgf3wk5SKW68")
        assert observe(html, {}) == ("Pw8TpSO0Vpgf3wk5SKW68", "rel-7")
        plain = PAGE.format(dpl="", build="Pw8TpSO0Vpgf3wk5SKW68")
        assert observe(plain, {}) == ("Pw8TpSO0Vpgf3wk5SKW68", None)
        assert observe(plain, {"x-nextjs-deployment-id": "rel-8"})[1] == "rel-8"
        pages = '<script id="__NEXT_DATA__">{"props":{},"buildId":"abcdef123"}</script>'
        assert observe(pages, {}) == ("abcdef123", None)
        assert observe("<html>hello</html>", {}) == (None, None)


class TestBuildsLive:
    @slow_build
    def test_real_builds_behind_the_proxy(
        self, next_app: NextBuild, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The real fixture app: one build on one instance passes; two instances of one build
        without deploymentId fail; builds A and B split 50/50 by tower's proxy fail as two
        builds no deployment id tells apart."""
        other = build_or_fail(env={"FIXTURE_BUILD": "B"})
        monkeypatch.setattr(nextbuilds, "SAMPLES", 24)  # a 50/50 split shows both (1 - 2^-23)
        with ThreadPoolExecutor(2) as pool:  # `next start` takes seconds: start both at once
            servers = list(
                pool.map(
                    lambda b: start_next(b[1], tmp_path / f"next-{b[0]}.log"),
                    enumerate([next_app, other]),
                )
            )
        ports = [int(server.url.rsplit(":", 1)[1]) for server in servers]

        async def scenario(releases: int, instances: int) -> Finding:
            proxy = Proxy("127.0.0.1", 0)
            await proxy.start()
            proxy.update(
                {f"r{i}": 1.0 for i in range(releases)},
                [
                    Target(f"i{i}", f"r{i}", "127.0.0.1", port)
                    for i, port in enumerate(ports[:releases])
                ],
            )
            repo = make_repo(tmp_path / f"repo-{releases}-{instances}", instances=instances,
                             strategy="immediate")  # fmt: skip
            try:
                async with httpx.AsyncClient(timeout=30) as client:
                    ctx = CheckContext(
                        spec=load_spec(repo / "tower.toml"),
                        root=repo,
                        url=f"http://127.0.0.1:{proxy.port}",
                        client=client,
                    )
                    run = await run_checks(ctx, select(["next.builds"], kinds=("live",)))
                return run.findings[0]
            finally:
                await proxy.stop()

        async def scenarios() -> list[Finding]:
            return [await scenario(1, 1), await scenario(1, 2), await scenario(2, 2)]

        try:
            single, unnamed, split = asyncio.run(scenarios())
            assert single.status is Status.PASS, single.message
            assert unnamed.status is Status.FAIL and "no deployment id" in unnamed.message
            assert split.status is Status.FAIL, split.message
            assert "2 builds" in split.message and KEY in split.message
        finally:
            for server in servers:
                server.stop()


class _Build(ThreadingHTTPServer):
    """A stand-in for one Next.js build: answers its name with its deployment id, as Next
    answers client navigations (x-nextjs-deployment-id)."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = name.encode()
                self.send_response(200)
                self.send_header("x-nextjs-deployment-id", f"dpl-{name}")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class TestProxyDeploymentPin:
    async def test_a_navigation_stays_on_the_build_that_rendered_its_page(self) -> None:
        """Once release "new" answered with deployment id dpl-new, a request carrying
        x-deployment-id: dpl-new goes to "new" whatever the split draws, even at 1%; an unknown
        id, or a release no longer routed, falls back to the split."""
        old, new = _Build("old"), _Build("new")
        proxy = Proxy("127.0.0.1", 0)
        await proxy.start()
        try:
            targets = [
                Target("o", "old", "127.0.0.1", old.server_address[1]),
                Target("n", "new", "127.0.0.1", new.server_address[1]),
            ]
            proxy.update({"old": 0.0, "new": 1.0}, targets)
            base = f"http://127.0.0.1:{proxy.port}/"
            async with httpx.AsyncClient() as client:
                assert (await client.get(base)).text == "new"
                proxy.update({"old": 0.99, "new": 0.01}, targets)
                client.cookies.clear()
                pinned = [
                    (await client.get(base, headers={"x-deployment-id": "dpl-new"})).text
                    for _ in range(30)
                ]
                assert set(pinned) == {"new"}
                client.cookies.clear()
                other = [
                    (await client.get(base, headers={"x-deployment-id": "dpl-gone"})).text
                    for _ in range(10)
                ]
                assert "old" in other
                proxy.update({"old": 1.0}, targets[:1])
                client.cookies.clear()
                moved = await client.get(base, headers={"x-deployment-id": "dpl-new"})
                assert moved.text == "old"
        finally:
            await proxy.stop()
            for server in (old, new):
                server.shutdown()
                server.server_close()
