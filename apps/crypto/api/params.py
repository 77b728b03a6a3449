"""The parameters each command kind takes, as serializers: validation and the OpenAPI schema in one.

One serializer per kind in COMMAND_PARAMS (keyed like COMMAND_BUILDERS; a test keeps them equal).
A parameter the kind does not take is an error rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rest_framework import serializers

from apps.crypto.grpc.services.commands.ping import INT32_MAX
from apps.crypto.models import MAX_TEXT

MAX_SYMBOLS = 500
MAX_SYMBOL_CHARS = 32  # Wallet.symbol max_length


class StrictParams(serializers.Serializer):
    """Rejects keys it does not declare."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = self.initial_data if isinstance(self.initial_data, Mapping) else {}
        unexpected = sorted(set(given) - set(self.fields))
        if unexpected:
            raise serializers.ValidationError(f"does not take {', '.join(unexpected)}; "
                                              f"accepted: {', '.join(self.fields) or 'nothing'}")
        return attrs


class PauseParams(StrictParams):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_TEXT,
                                   help_text="why the bot is paused, shown to its operator")


class ResumeParams(StrictParams):
    message = serializers.CharField(required=False, allow_blank=True, max_length=MAX_TEXT,
                                    help_text="passed on to the bot")


class PingParams(StrictParams):
    sequence = serializers.IntegerField(required=False, min_value=0, max_value=INT32_MAX,
                                        help_text="echoed by the bot to match answers to pings")


class SyncWalletsParams(StrictParams):
    symbols = serializers.ListField(child=serializers.CharField(max_length=MAX_SYMBOL_CHARS), required=False,
                                    max_length=MAX_SYMBOLS, help_text="symbols to re-read; empty means all")


class RequestStatusParams(StrictParams):
    include_stats = serializers.BooleanField(required=False, help_text="ask for statistics too")


COMMAND_PARAMS: Mapping[str, type[StrictParams]] = MappingProxyType({
    "pause": PauseParams,
    "resume": ResumeParams,
    "ping": PingParams,
    "sync_wallets": SyncWalletsParams,
    "request_status": RequestStatusParams,
})

def validated_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The builder keyword arguments for `kind`; ValidationError (400) naming the bad parameter."""
    serializer = COMMAND_PARAMS[kind](data=params)
    if not serializer.is_valid():
        raise serializers.ValidationError({"params": serializer.errors})
    return dict(serializer.validated_data)
