"""What the API reads and returns; the OpenAPI schema is generated from these."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from apps.crypto.grpc.services.commands import COMMAND_BUILDERS
from apps.crypto.live import CONNECTED, DISCONNECTED, UNKNOWN, LiveView
from apps.crypto.models import Client, CommandRecord, Transaction, Wallet

from .params import COMMAND_PARAMS

RECENT = 20  # transactions and commands shown on one client
MAX_TIMEOUT = 120.0  # seconds; the server caps the ack wait at its own ack_timeout anyway


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="machine-readable name, e.g. not_found, unauthorized, unavailable")
    detail = serializers.CharField(help_text="what went wrong, for a human")


class LiveStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=[CONNECTED, DISCONNECTED, UNKNOWN],
                                    help_text="unknown when the cluster view (Redis) is not available")
    replica = serializers.CharField(allow_null=True, help_text="replica holding the stream")
    connected_at = serializers.DateTimeField(allow_null=True)
    last_heartbeat = serializers.DateTimeField(allow_null=True)


class LiveStateMixin(serializers.Serializer):
    """Adds `live` from the LiveView passed in the serializer context (one cluster read per request)."""

    live = serializers.SerializerMethodField()

    @extend_schema_field(LiveStateSerializer)
    def get_live(self, obj: Client) -> dict[str, Any]:
        view: LiveView = self.context["live"]
        return view.state(obj.client_id).as_dict()


class ClientSerializer(LiveStateMixin, serializers.ModelSerializer):
    class Meta:
        model = Client
        fields: tuple[str, ...] = ("client_id", "name", "client_type", "version", "api_url", "status",
                                   "first_seen", "last_seen", "live")


class WalletSerializer(serializers.ModelSerializer):
    class Meta:
        model = Wallet
        fields = ("wallet_id", "symbol", "balance_available", "balance_locked", "last_sync", "updated_at")


class TransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Transaction
        fields = ("transaction_id", "type", "symbol", "amount", "status", "details", "created_at")


class CommandRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = CommandRecord
        fields = ("command_id", "kind", "payload", "sent_by", "wait_for_ack", "accepted_by", "routed_to", "outcome",
                  "ack_success", "ack_message", "ack_error", "created_at", "accepted_at", "delivered_at",
                  "finished_at")


class ClientDetailSerializer(ClientSerializer):
    wallets = WalletSerializer(many=True, read_only=True)
    recent_transactions = serializers.SerializerMethodField(help_text=f"the last {RECENT}, newest first")
    recent_commands = serializers.SerializerMethodField(help_text=f"the last {RECENT}, newest first")

    class Meta(ClientSerializer.Meta):
        fields = (*ClientSerializer.Meta.fields, "wallets", "recent_transactions", "recent_commands")

    @extend_schema_field(TransactionSerializer(many=True))
    def get_recent_transactions(self, obj: Client) -> Any:
        rows = Transaction.objects.filter(client=obj).order_by("-created_at", "-id")[:RECENT]
        return TransactionSerializer(rows, many=True).data

    @extend_schema_field(CommandRecordSerializer(many=True))
    def get_recent_commands(self, obj: Client) -> Any:
        rows = CommandRecord.objects.filter(client_id=obj.client_id).order_by("-created_at", "-id")[:RECENT]
        return CommandRecordSerializer(rows, many=True).data


PARAMS_SCHEMA = PolymorphicProxySerializer(component_name="CommandParams", resource_type_field_name=None,
                                           serializers=list(COMMAND_PARAMS.values()), many=False)


@extend_schema_field(PARAMS_SCHEMA)
class CommandParamsField(serializers.DictField):
    """A JSON object checked per kind by params.validated_params; documented as one of the kinds' params."""


class CommandBodySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(COMMAND_BUILDERS))
    params = CommandParamsField(required=False, default=dict, help_text="the kind's parameters")
    wait = serializers.BooleanField(required=False, default=True,
                                    help_text="true: wait for the bot's ack; false: only confirm delivery")
    timeout = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.001,
                                     max_value=MAX_TIMEOUT, help_text="seconds; default: the server's ack_timeout "
                                                                      "(wait) or 10 s (delivery)")


class CommandAckSerializer(serializers.Serializer):
    command_id = serializers.CharField()
    success = serializers.BooleanField(help_text="false also when the bot did not answer in time or is offline")
    message = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    current_status = serializers.CharField(allow_null=True, help_text="ClientStatus name from the ack")


class CommandDeliverySerializer(serializers.Serializer):
    command_id = serializers.CharField()
    delivered = serializers.BooleanField(help_text="the command reached the bot's live stream")
    error = serializers.CharField(allow_blank=True)


COMMAND_RESULT_SCHEMA = PolymorphicProxySerializer(
    component_name="CommandResult", resource_type_field_name=None,
    serializers=[CommandAckSerializer, CommandDeliverySerializer], many=False)


class SelectorSerializer(serializers.Serializer):
    """Exactly one way must be set; the gRPC service checks that and answers 400 naming what it found."""

    client_ids = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                       required=False, default=list, help_text="these clients")
    client_type = serializers.CharField(required=False, default="", allow_blank=True,
                                        help_text="clients registered with this client_type")
    all_connected = serializers.BooleanField(required=False, default=False, help_text="every connected client")

    def to_internal_value(self, data: Any) -> Any:
        unexpected = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unexpected:  # a misspelt way would otherwise read as "none set"
            raise serializers.ValidationError(f"does not take {', '.join(unexpected)}; "
                                              f"accepted: {', '.join(self.fields)}")
        return super().to_internal_value(data)


class BroadcastCommandSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(COMMAND_BUILDERS))
    params = CommandParamsField(required=False, default=dict, help_text="the kind's parameters")


class BroadcastBodySerializer(serializers.Serializer):
    selector = SelectorSerializer(help_text="set exactly one of client_ids, client_type, all_connected")
    command = BroadcastCommandSerializer(help_text="as the single-command endpoint's kind and params")
    timeout = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.001,
                                     max_value=MAX_TIMEOUT, help_text="seconds for the whole broadcast; default: "
                                                                      "the server's ack_timeout")


class BroadcastClientResultSerializer(CommandAckSerializer):
    """One bot's ack (or failure) within a broadcast."""

    client_id = serializers.CharField()
    command_id = serializers.CharField(help_text="this bot's copy: <broadcast_id>:<client_id>")
    success = serializers.BooleanField(help_text="false also when the bot is not connected or did not ack in time")


class BroadcastSummarySerializer(serializers.Serializer):
    targeted = serializers.IntegerField()
    acked = serializers.IntegerField(help_text="results with success=true")
    failed = serializers.IntegerField(help_text="every other result")


class BroadcastResponseSerializer(serializers.Serializer):
    broadcast_id = serializers.CharField(help_text="the broadcast's CommandRecord (kind broadcast)")
    results = BroadcastClientResultSerializer(many=True, help_text="one per targeted client, by client_id")
    summary = BroadcastSummarySerializer()
