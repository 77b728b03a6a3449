"""What bots report and what operators sent them, persisted through the ORM."""

from __future__ import annotations

from django.db import models

from apps.crypto.limits import ID_MAX, REASON_MAX

MAX_TEXT = 10_000  # longest free text a bot may send in one field
DECIMAL = {"max_digits": 38, "decimal_places": 18}


class ClientStatus(models.TextChoices):
    UNKNOWN = "unknown"
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    STOPPED = "stopped"
    DISCONNECTED = "disconnected"


class Client(models.Model):
    client_id = models.CharField(max_length=ID_MAX, unique=True)
    name = models.CharField(max_length=255, blank=True)
    client_type = models.CharField(max_length=64, blank=True)
    version = models.CharField(max_length=64, blank=True)
    api_url = models.CharField(max_length=512, blank=True)
    status = models.CharField(max_length=16, choices=ClientStatus.choices, default=ClientStatus.UNKNOWN)
    # when the bot said (its ClientMessage.timestamp) the status it last reported: an older report,
    # flushed later by a lagging replica, does not overwrite a newer one
    status_reported_at = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name or self.client_id


class ClientApiKey(models.Model):
    """A bot's API key, stored as a SHA-256 hash and bound to one client_id."""

    client_id = models.CharField(max_length=ID_MAX, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="first characters, to recognise a key")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.client_id} {self.prefix}..."


class Wallet(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="wallets")
    wallet_id = models.CharField(max_length=ID_MAX)
    symbol = models.CharField(max_length=32)
    balance_available = models.DecimalField(**DECIMAL)
    balance_locked = models.DecimalField(**DECIMAL)
    last_sync = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    reported_at = models.DateTimeField(null=True, blank=True)  # the bot's timestamp of this balance: latest wins

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "wallet_id", "symbol"], name="uniq_wallet_per_client_symbol")
        ]


class TransactionType(models.TextChoices):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"


class Transaction(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="transactions")
    transaction_id = models.CharField(max_length=ID_MAX)
    type = models.CharField(max_length=16, choices=TransactionType.choices)
    symbol = models.CharField(max_length=32)
    amount = models.DecimalField(**DECIMAL)
    status = models.CharField(max_length=64, blank=True)
    details = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reported_at = models.DateTimeField(null=True, blank=True)  # the bot's timestamp of this status: latest wins

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "transaction_id"], name="uniq_transaction_per_client")
        ]


class StatusChange(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="status_changes")
    status = models.CharField(max_length=16, choices=ClientStatus.choices)
    details = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class ErrorReport(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="error_reports")
    severity = models.CharField(max_length=32, blank=True)
    message = models.TextField()
    traceback = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class LogEntry(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="log_entries")
    level = models.CharField(max_length=16, blank=True)
    message = models.TextField()
    extra_data = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "log entries"  # not Django's "log entrys"


class ReceivedMessage(models.Model):
    """A message of a bot that asked for receipts, stored (or rejected) once: the key that makes a resend
    after a reconnect a no-op. Rows older than the retention are deleted in pk order, which is their
    insertion order: an index on received_at would cost every insert for an hourly delete."""

    client_id = models.CharField(max_length=ID_MAX)
    message_id = models.CharField(max_length=ID_MAX)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client_id", "message_id"], name="uniq_received_message")
        ]


class RejectedMessage(models.Model):
    """A client message that failed validation; kept so operators see why."""

    client_id = models.CharField(max_length=ID_MAX, db_index=True)
    message_id = models.CharField(max_length=ID_MAX, blank=True)
    payload_type = models.CharField(max_length=32, blank=True)
    reason = models.CharField(max_length=REASON_MAX)
    created_at = models.DateTimeField(auto_now_add=True)


class CommandOutcome(models.TextChoices):
    QUEUED = "queued"
    DELIVERED = "delivered"
    ACKED = "acked"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    LATE = "late"  # acked after its caller stopped waiting (was timed_out)


class CommandRecord(models.Model):
    """Every command sent to a bot and how it ended."""

    command_id = models.CharField(max_length=ID_MAX, unique=True)
    client_id = models.CharField(max_length=ID_MAX, db_index=True)
    kind = models.CharField(max_length=32)
    payload = models.JSONField(default=dict, blank=True)
    sent_by = models.CharField(max_length=ID_MAX, blank=True)
    wait_for_ack = models.BooleanField(default=False)
    accepted_by = models.CharField(max_length=ID_MAX, blank=True, help_text="replica that took the RPC")
    routed_to = models.CharField(max_length=ID_MAX, blank=True, help_text="replica that owned the stream")
    outcome = models.CharField(max_length=16, choices=CommandOutcome.choices, default=CommandOutcome.QUEUED)
    ack_success = models.BooleanField(null=True)
    ack_message = models.TextField(blank=True)
    ack_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)  # when the journal first wrote the record, not an event
    accepted_at = models.DateTimeField(null=True, blank=True,
                                       help_text="when the accepting replica took the command (its clock)")
    delivered_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["client_id", "-created_at"])]
