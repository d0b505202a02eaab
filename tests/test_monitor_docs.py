"""docs/monitor.md: every tower.toml example loads, and the Python example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controltower.spec import parse_spec

DOC = Path(__file__).resolve().parent.parent / "docs" / "monitor.md"
TEXT = DOC.read_text()
EXAMPLES = dict(re.findall(r"<!-- example: ([\w-]+) -->\n```toml\n(.*?)```", TEXT, re.S))
VARIABLES = {
    name: f"https://example.test/{name.lower()}" for name in re.findall(r"\$\{(\w+)\}", TEXT)
}


class TestExamples:
    def test_every_toml_block_is_an_example(self) -> None:
        """Each toml block on the page is marked as an example, so none goes untested."""
        assert len(EXAMPLES) == TEXT.count("```toml") >= 10

    @pytest.mark.parametrize("name", sorted(EXAMPLES))
    def test_example_loads(self, name: str) -> None:
        """The example is a valid tower.toml (with a [service] table when it has none)."""
        text = EXAMPLES[name]
        if "[service]" not in text:
            text = '[service]\nname = "shop"\n' + text
        if "[alerts.channels." not in text and "default_channels" in text:
            text += '[alerts.channels.ops]\ntype = "slack"\nurl = "https://hooks.test/x"\n'
        spec = parse_spec(text, environ=VARIABLES)
        assert spec.service.name == "shop"

    def test_prometheus_example_keeps_the_plan_thresholds(self) -> None:
        """The memory example says warning at 85 % and critical at 95 %."""
        spec = parse_spec('[service]\nname = "shop"\n' + EXAMPLES["prometheus"], environ={})
        monitor = spec.monitors[0]
        assert str(monitor.conditions[0]) == "memory_pct < 95"
        assert str(monitor.warning[0]) == "memory_pct < 85"


class TestEmbedding:
    async def test_python_example_runs(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The 'running it inside another process' example works as written (shortened)."""
        code = re.search(r"```python\n(.*?)```", TEXT, re.S)
        assert code is not None
        source = code.group(1).replace("await asyncio.sleep(60)", "await asyncio.sleep(0.5)")
        (tmp_path / "tower.toml").write_text(
            '[service]\nname = "shop"\n[[monitors]]\nname = "beat"\ntype = "heartbeat"\n'
        )
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, object] = {}
        exec(compile(source, str(DOC), "exec"), namespace)
        main = namespace["main"]
        await main()  # type: ignore[operator]
        assert (tmp_path / ".tower" / "tower.db").exists()
