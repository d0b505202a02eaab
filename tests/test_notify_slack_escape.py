"""Slack text is escaped everywhere it comes from a notification; mentions come only
from the spec (``[alerts.channels.<name>] mentions``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from controltower.exceptions import SpecError
from controltower.notify import render
from controltower.notify.channels import SlackChannel
from controltower.notify.channels.base import Delivery
from controltower.notify.message import Notification
from controltower.spec import parse_spec
from controltower.spec.alerts import parse_channel

CREATED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HOSTILE = Notification(
    key="error:1:new",
    kind="error.new<!here>",
    title="TypeError: <!channel> <@U024BE7LH> & <https://evil.example|click>",
    text="message <!everyone> <!subteam^S012AB>",
    severity="error<!here>",
    service="shop<!channel>",
    environment="prod",
    url="https://tower.example.com/errors/1?x=a|b>c",
    fields={"<!channel>": "<!here>"},
)


def every_text(message: object) -> list[str]:
    if isinstance(message, dict):
        return [t for value in message.values() for t in every_text(value)]
    if isinstance(message, list):
        return [t for value in message for t in every_text(value)]
    return [message] if isinstance(message, str) else []


class TestSlackEscaping:
    def test_no_mention_or_link_from_event_data(self) -> None:
        """Fallback text, mrkdwn blocks, fields and context: no ``<`` from the event
        survives, so no mention or link can be injected; the link to tower stays one
        link; the header is plain_text, which Slack never parses."""
        message = render.slack_message(Delivery("k:s", "s", HOSTILE, CREATED))
        header = message["blocks"][0]["text"]
        assert header["type"] == "plain_text", "Slack parses no mention in plain_text"
        texts = every_text({**message, "blocks": message["blocks"][1:]})
        for text in texts:
            assert "<!" not in text and "<@" not in text and "<https://evil" not in text, text
        assert "&lt;!channel&gt;" in message["text"]
        context = message["attachments"][0]["blocks"][-1]["elements"][0]["text"]
        assert context.count("<") == 1 and "|open>" in context and "%7C" in context

    def test_mentions_come_from_the_spec(self) -> None:
        """Mentions named in the channel's spec lead the fallback text and the message."""
        spec = parse_channel(
            {"type": "slack", "url": "https://hooks.slack.test/x", "mentions": ["<!here>"]}
        )
        request = SlackChannel("ops", spec).build_request(
            Delivery("k:s", "ops", HOSTILE, CREATED), now=0
        )
        body = json.loads(request.content)
        assert body["text"].startswith("<!here> ")
        assert body["blocks"][1]["text"]["text"].startswith("<!here> ")

    def test_a_mention_that_is_not_one_is_refused_at_load(self) -> None:
        """Anything but <!here>, <!channel>, <!everyone>, <@U…>, <!subteam^S…> is a spec error."""
        text = (
            '[service]\nname = "x"\n[alerts.channels.ops]\ntype = "slack"\n'
            'url = "https://hooks.slack.test/x"\nmentions = ["@here"]\n'
        )
        with pytest.raises(SpecError, match="is not a Slack mention"):
            parse_spec(text, environ={})
