"""Shared pieces of the web-tier tests: an operator account and a record of every ERROR logged."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model


@dataclass
class Operator:
    email: str
    password: str


def make_operator(*, superuser: bool = True) -> Operator:
    tag = uuid.uuid4().hex[:12]
    email, password = f"{tag}@example.com", f"pw-{tag}"
    User = get_user_model()
    if superuser:
        User.objects.create_superuser(email=email, username=tag, password=password)
    else:
        User.objects.create_user(email=email, username=tag, password=password, is_staff=True)
    return Operator(email, password)


@pytest.fixture
def operator() -> Operator:
    return make_operator()


@pytest.fixture
def error_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[logging.LogRecord]]:
    """Every record at ERROR or above that any logger handles, whatever its handlers and propagation."""
    records: list[logging.LogRecord] = []
    handle = logging.Logger.handle

    def recording(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            records.append(record)
        handle(self, record)

    monkeypatch.setattr(logging.Logger, "handle", recording)
    yield records
