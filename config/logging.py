"""Plain, structured log lines: `event key=value ...` text by default, one JSON object per line
with LOG_FORMAT=json (the event and its key=value pairs become fields). Every line names the replica."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "replica"}
_PAIR = re.compile(r"(\w+)=('[^']*'|\"[^\"]*\"|\S+)")
_EVENT = re.compile(r"^([a-z_]+\.[a-z_.]+)(?:\s|$)")


class ReplicaFilter(logging.Filter):
    """Stamps every record with this process's replica id."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica

    def filter(self, record: logging.LogRecord) -> bool:
        record.replica = self.replica
        return True


def structured_fields(message: str) -> dict[str, str]:
    """`stream.opened client_id=a epoch=3` -> {"event": "stream.opened", "client_id": "a", "epoch": "3"}."""
    event = _EVENT.match(message)
    if event is None:
        return {}
    fields = {key: value.strip("'\"") for key, value in _PAIR.findall(message[event.end():])}
    return {"event": event.group(1), **fields}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, replica, event, its fields, and the text."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "replica": getattr(record, "replica", ""),
        }
        payload.update(structured_fields(message))
        payload.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        payload["msg"] = message
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def build_logging(log_format: str, level: str, replica: str = "") -> dict[str, Any]:
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"replica": {"()": ReplicaFilter, "replica": replica}},
        "formatters": {
            "text": {"format": "%(asctime)s %(levelname)s %(name)s replica=%(replica)s %(message)s"},
            "json": {"()": JsonFormatter},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": formatter, "filters": ["replica"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django": {"level": "WARNING"}, "django_cfg": {"level": "WARNING"}},
    }
