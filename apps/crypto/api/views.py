"""The operator endpoints: list clients, show one, send it a command, send one command to many (broadcast).

Views are sync: under ASGI each request runs in its own worker thread, so a command waiting up to
its ack timeout holds that thread only. The live state is read once per request (apps.crypto.live);
commands go through apps.crypto.operator_commands with the caller's own operator token, so the
CommandRecord's sent_by names the operator that really sent it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.crypto.grpc.services.commands import CommandClientError, selector
from apps.crypto.live import LiveView, fetch_live_view
from apps.crypto.models import Client
from apps.crypto.operator_commands import (
    BroadcastReply,
    CommandReply,
    CommandRequest,
    run_broadcast_sync,
    run_commands_sync,
)

from .auth import OperatorTokenAuthentication
from .errors import api_exception_handler, bad_request, command_failure, not_found
from .params import validated_params
from .serializers import (
    COMMAND_RESULT_SCHEMA,
    BroadcastBodySerializer,
    BroadcastResponseSerializer,
    ClientDetailSerializer,
    ClientSerializer,
    CommandBodySerializer,
    ErrorSerializer,
)

logger = logging.getLogger(__name__)

TAG = "crypto"
AUTH_ERRORS = {401: OpenApiResponse(ErrorSerializer, description="missing or unknown operator token")}
CLIENT_ERRORS = {**AUTH_ERRORS, 404: OpenApiResponse(ErrorSerializer, description="no such client")}
RPC_ERRORS = {
    502: OpenApiResponse(ErrorSerializer, description="the gRPC service refused the call (configuration)"),
    503: OpenApiResponse(ErrorSerializer, description="the gRPC service is unreachable"),
    504: OpenApiResponse(ErrorSerializer, description="no answer from the gRPC service within the deadline"),
}
COMMAND_ERRORS = {
    **CLIENT_ERRORS,
    400: OpenApiResponse(ErrorSerializer, description="bad kind, params or timeout"),
    **RPC_ERRORS,
}
BROADCAST_ERRORS = {
    **AUTH_ERRORS,
    400: OpenApiResponse(ErrorSerializer, description="bad kind, params or timeout, or a malformed selector "
                                                      "(grpc_invalid_argument, as the gRPC service words it)"),
    **RPC_ERRORS,
}


class OperatorApiView(GenericAPIView):
    """Operator token auth, JSON in and out, errors as {"error", "detail"}."""

    authentication_classes = (OperatorTokenAuthentication,)
    permission_classes = (IsAuthenticated,)
    renderer_classes = (JSONRenderer,)
    parser_classes = (JSONParser,)
    schema = AutoSchema()  # REST_FRAMEWORK has no DEFAULT_SCHEMA_CLASS; class-level @extend_schema builds on this

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    def live_context(self, live: LiveView) -> dict[str, Any]:
        return {**self.get_serializer_context(), "live": live}


def get_client(client_id: str) -> Client:
    client = Client.objects.filter(client_id=client_id).first()
    if client is None:
        raise not_found(f"no client {client_id!r}")
    return client


@extend_schema(tags=[TAG], summary="Clients with their live connection state",
               responses={200: ClientSerializer(many=True), **AUTH_ERRORS})
class ClientListView(OperatorApiView):
    serializer_class = ClientSerializer

    def get_queryset(self) -> QuerySet[Client]:
        return Client.objects.order_by("client_id")

    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        rows = ClientSerializer(page, many=True, context=self.live_context(
            fetch_live_view(client_ids=[client.client_id for client in page or ()]))).data
        return self.get_paginated_response(rows)


@extend_schema(tags=[TAG], summary="One client: wallets, recent transactions and commands, live state",
               responses={200: ClientDetailSerializer, **CLIENT_ERRORS})
class ClientDetailView(OperatorApiView):
    serializer_class = ClientDetailSerializer
    pagination_class = None

    def get(self, request: Request, client_id: str) -> Response:
        client = get_client(client_id)
        view = fetch_live_view(client_ids=[client.client_id])
        return Response(ClientDetailSerializer(client, context=self.live_context(view)).data)


@extend_schema(tags=[TAG], summary="Send a command; with wait=true return the bot's ack",
               description="A bot that is offline or does not answer in time is still a 200, with "
                           "success=false (or delivered=false) and the reason in `error`.",
               request=CommandBodySerializer, responses={200: COMMAND_RESULT_SCHEMA, **COMMAND_ERRORS})
class ClientCommandView(OperatorApiView):
    serializer_class = CommandBodySerializer
    pagination_class = None

    def post(self, request: Request, client_id: str) -> Response:
        get_client(client_id)
        command = self.command_request(client_id, request.data)
        reply = self.send(command, str(request.auth))  # the caller's own token, checked by authentication
        logger.info("api.command client_id=%s kind=%s command_id=%s wait=%s success=%s operator=%s", client_id,
                    command.kind, reply.command_id, command.wait, reply.success, request.user)
        return Response(reply.as_ack() if command.wait else reply.as_delivery())

    def command_request(self, client_id: str, data: Any) -> CommandRequest:
        body = CommandBodySerializer(data=data)
        body.is_valid(raise_exception=True)
        kind = body.validated_data["kind"]
        params = validated_params(kind, body.validated_data["params"])
        return CommandRequest(client_id, kind, params, body.validated_data["wait"], body.validated_data["timeout"])

    def send(self, command: CommandRequest, token: str) -> CommandReply:
        try:
            [result] = run_commands_sync([command], token=token)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        if isinstance(result, CommandClientError):
            logger.warning("api.command_failed client_id=%s kind=%s code=%s", command.client_id, command.kind,
                           result.code.name)
            raise command_failure(result)
        return result


@extend_schema(tags=[TAG], summary="Send one command to many clients (BroadcastCommand); every bot's result and "
                                   "the summary",
               description="One BroadcastCommand to the clients the selector matches. Every targeted client "
                           "has one result: its ack, or success=false with the reason (not connected, not acked "
                           "before the deadline, ...); bots that fail are still a 200.",
               request=BroadcastBodySerializer, responses={200: BroadcastResponseSerializer, **BROADCAST_ERRORS})
class BroadcastView(OperatorApiView):
    serializer_class = BroadcastBodySerializer
    pagination_class = None

    def post(self, request: Request) -> Response:
        body = BroadcastBodySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        kind = data["command"]["kind"]
        params = validated_params(kind, data["command"]["params"])
        way = data["selector"]
        client_selector = selector(way["client_ids"], way["client_type"], way["all_connected"])
        try:
            reply = run_broadcast_sync(kind, params, client_selector, timeout=data["timeout"],
                                       token=str(request.auth))  # the caller's own token
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        except CommandClientError as exc:
            logger.warning("api.broadcast_failed kind=%s code=%s", kind, exc.code.name)
            raise command_failure(exc) from None
        logger.info("api.broadcast broadcast_id=%s kind=%s targeted=%d acked=%d failed=%d operator=%s",
                    reply.broadcast_id, kind, reply.targeted, reply.acked, reply.failed, request.user)
        return Response(broadcast_body(reply))


def broadcast_body(reply: BroadcastReply) -> dict[str, Any]:
    body = reply.as_dict()
    body["results"].sort(key=lambda result: result["client_id"])
    return body
