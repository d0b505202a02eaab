"""Every tower.toml example in docs/deploy.md is a valid spec."""

from __future__ import annotations

import re

import pytest

from controltower.spec import parse_spec
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "deploy.md").read_text()
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC, re.S)
ENVIRON = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.test/a",
    "SLACK_DEPLOYS_WEBHOOK_URL": "https://hooks.slack.test/b",
    "DATABASE_URL": "postgresql://u@db/x",
}


def test_the_guide_has_examples() -> None:
    """The guide shows tower.toml for every driver and strategy."""
    assert len(BLOCKS) >= 15
    for needle in (
        'driver = "local"',
        'driver = "fly"',
        'driver = "exec"',
        'strategy = "rolling"',
        'strategy = "bluegreen"',
        'strategy = "canary"',
    ):
        assert any(needle in block for block in BLOCKS), needle


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_is_a_valid_spec(block: str) -> None:
    """Each example loads (a fragment under a minimal [service] table) without an error."""
    text = (
        block if re.search(r"^\[service\]", block, re.M) else '[service]\nname = "shop"\n\n' + block
    )
    spec = parse_spec(text, environ=ENVIRON)
    assert spec.service.name
