"""Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat, Discord's /slack URLs)."""

from __future__ import annotations

import orjson

from .outcome import DeliveryOutcome
from .outgoing import post
from .text import alert_text


def send(*, target: str, secret: str, payload: dict) -> DeliveryOutcome:
    subject, body = alert_text(payload)
    return post(target, orjson.dumps({"text": f"*{subject}*\n{body}"}), {})
