"""Text limits for handler fields: the smaller of the stream's max_text_chars and the column's max_length."""

from __future__ import annotations

from functools import cache

from django.db.models import Model

from ..proto.converters import CryptoProtobufConverter as convert
from ..inbound import MessageContext


@cache
def _max_length(model: type[Model], column: str) -> int | None:
    """Looked up once per column: this runs for every text field of every message."""
    max_length: int | None = getattr(model._meta.get_field(column), "max_length", None)
    return max_length


def column_limit(model: type[Model], column: str, stream_limit: int) -> int:
    max_length = _max_length(model, column)
    return min(stream_limit, max_length) if max_length else stream_limit


def text(ctx: MessageContext, label: str, model: type[Model], column: str, value: str, *, required: bool = False) -> str:
    """Checked text for model.column; `label` names the wire field in the rejection reason."""
    return convert.check_text(value, label, column_limit(model, column, ctx.max_text_chars), required=required)
