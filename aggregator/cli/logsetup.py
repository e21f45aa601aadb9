"""Log formats for long-running commands: one line per event, as text or as JSON objects.

Call sites add structured fields with `extra={"feed": url, "outcome": status, ...}`; the text format
shows the message (which already names the feed), the JSON format adds every extra field as a key, so
that `jq 'select(.outcome == "error")'` works on a daemon's log.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

from aggregator.core.redact import redact_url

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# Attributes every LogRecord has: anything else on a record came from `extra=` and is a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_url(_one_line(record.getMessage())),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                scalar = value if isinstance(value, str | int | float | bool | None) else str(value)
                document[key] = redact_url(scalar) if isinstance(scalar, str) else scalar
        if record.exc_info:
            document["exception"] = redact_url(self.formatException(record.exc_info))
        return json.dumps(document, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """The standard formatter, with credentials and tokens in feed addresses masked (see core/redact.py)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


class OneLineFormatter(RedactingFormatter):
    """Text lines; a multi-line message (a config error lists one problem per line) is joined with ' | '."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.exc_info:
            return line  # a traceback is worth its lines: it is a bug
        return _one_line(line)


def _one_line(text: str) -> str:
    return " | ".join(part for part in text.splitlines() if part.strip()) if "\n" in text else text


def configure_logging(level: str | int, log_format: LogFormat = "text") -> None:
    """Replace whatever logging setup there was with one handler on stderr in `log_format`."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else OneLineFormatter(TEXT_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z")
    )
    handler.setFormatter(formatter)
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    # apscheduler narrates every job run and httpx every request at INFO; our own lines already say
    # what each poll did, so below DEBUG keep only their warnings and errors.
    for name in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG else max(logging.WARNING, numeric))
    handler.addFilter(_still_running_is_no_news)


def _still_running_is_no_news(record: logging.LogRecord) -> bool:
    """apscheduler warns each time a feed falls due while its previous poll still runs (a slow server, a
    short interval): the poll in flight is the one that counts, and it reports its own outcome."""
    return not (record.name.startswith("apscheduler") and "maximum number of running instances" in str(record.msg))
