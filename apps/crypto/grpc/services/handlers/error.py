"""error: a bot-side error report, kept verbatim (within limits) for operators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import ErrorReport

from ..inbound import MessageContext, Refusal
from ..ingest.plan import PayloadKind, Plan
from .fields import text


@dataclass(slots=True)
class ErrorWrite:
    kind: ClassVar[str] = "error"
    ctx: MessageContext
    client_pk: int
    severity: str
    message: str
    traceback: str


def check(ctx: MessageContext, client_pk: int, payload: pb2.ErrorReport) -> ErrorWrite:
    return ErrorWrite(
        ctx, client_pk,
        severity=text(ctx, "error.severity", ErrorReport, "severity", payload.severity),
        message=text(ctx, "error.message", ErrorReport, "message", payload.message),
        traceback=text(ctx, "error.traceback", ErrorReport, "traceback", payload.traceback),
    )


def fold(plan: Plan, w: ErrorWrite) -> None:
    plan.part(ERROR.name, list).append(w)


def store(plan: Plan) -> list[Refusal]:
    ErrorReport.objects.bulk_create([ErrorReport(client_id=w.client_pk, severity=w.severity, message=w.message,
                                                 traceback=w.traceback) for w in plan.part(ERROR.name, list)])
    return []


ERROR = PayloadKind(ErrorWrite.kind, store, check=check, fold=fold)
