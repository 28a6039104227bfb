"""Email through Django's mail framework (SMTP settings from the environment)."""

from __future__ import annotations

from smtplib import SMTPException

from django.conf import settings
from django.core.mail import EmailMessage

from .outcome import DeliveryOutcome
from .text import alert_text


def send(*, target: str, secret: str, payload: dict) -> DeliveryOutcome:
    subject, body = alert_text(payload)
    message = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[target])
    try:
        message.send(fail_silently=False)
    except (SMTPException, OSError) as exc:
        # Connection refused, a temporary 4xx from the server: worth another try later.
        return DeliveryOutcome.failure(f"{type(exc).__name__}: {exc}", retryable=True)
    return DeliveryOutcome.success()
