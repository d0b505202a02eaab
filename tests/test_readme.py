"""The README's promises: its two commands exist, its snippets are the tested ones, its links resolve."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def snippet(text: str, name: str) -> str:
    match = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, f"snippet {name} not found"
    return match.group(1)


class TestReadme:
    def test_opens_with_the_two_commands(self) -> None:
        """The first block runs the demo and the test suite through scripts that exist."""
        block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
        assert block and README.index(block.group(0)) < 40
        commands = [line.split("#")[0].strip() for line in block.group(1).strip().splitlines()]
        assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
        assert "tower demo" in (ROOT / "scripts" / "demo.sh").read_text()
        assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()

    @pytest.mark.parametrize("name", ["fastapi", "flask"])
    def test_snippets_are_the_tested_ones(self, name: str) -> None:
        """The README's appkit snippets are those tests/test_appkit_docs.py runs, under 15 lines."""
        code = snippet(README, name)
        assert code == snippet((ROOT / "docs" / "appkit.md").read_text(), name)
        assert len(code.strip().splitlines()) <= 15

    def test_links_resolve(self) -> None:
        """Every relative link in the README names a file in the repository."""
        for target in re.findall(r"\]\(([^)#:]+)\)", README):
            assert (ROOT / target).exists(), target

    @pytest.mark.parametrize(
        "page", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    )
    def test_doc_links_resolve(self, page: str) -> None:
        """Every relative link in docs/ names a file that exists."""
        path = ROOT / page
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{page} links {target}"
