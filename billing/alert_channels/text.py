"""The human-readable form of an alert, shared by email and chat channels."""

from __future__ import annotations

_HEADLINES = {
    "budget.threshold_crossed": "{scope_name} has used {percent_used}% of its {period} budget",
    "budget.exceeded": "{scope_name} has reached its {period} budget",
    "budget.forecast_exceeded": "{scope_name} is on course to exceed its {period} budget",
}


def alert_text(payload: dict) -> tuple[str, str]:
    """(subject, body) for an alert payload (billing.alerts builds the payload)."""
    scope_name = payload["organization"]
    if payload.get("scope") == "key" and payload.get("key_prefix"):
        scope_name = f"Key {payload['key_prefix']} of {payload['organization']}"
    period = payload.get("period", "")
    headline = _HEADLINES.get(payload["type"], "{scope_name}: budget alert").format(
        scope_name=scope_name, percent_used=payload.get("percent_used"), period=period
    )
    lines = [
        f"Spent ${payload['spent_usd']} of ${payload['budget_usd']} ({payload['percent_used']}%) "
        f"between {payload['period_start']} and {payload['period_end']}.",
    ]
    if payload.get("projected_spend_usd"):
        lines.append(f"Projected by the end of the period: ${payload['projected_spend_usd']}.")
    if payload["type"] == "budget.exceeded" and payload.get("mode") == "hard":
        lines.append("Requests are refused until the budget is raised or the period resets.")
    lines.append(f"Alert {payload['id']}, created {payload['created_at']}.")
    return f"[AI gateway] {headline}", "\n".join(lines)
