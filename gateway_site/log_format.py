"""Log formatters shared by the gateway, Django and Celery (settings.LOGGING, LOG_FORMAT).

JsonFormatter writes one JSON object per line: time, level, logger, message, the exception if
any, and the record's `fields` (a dict passed as `extra={"fields": ...}`, as the per-request line
does) merged at the top level. PlainFormatter writes the same facts as readable text.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import orjson


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            pairs = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "")
            head, sep, tail = text.partition("\n")  # keep a traceback below the fields
            text = f"{head} {pairs}{sep}{tail}"
        return text
