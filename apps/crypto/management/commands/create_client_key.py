"""`manage.py create_client_key <client_id>`: issue a bot API key, print it once, store only its hash."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.crypto.grpc.services.auth import API_KEY_HEADER, issue_client_key, validate_client_id
from apps.crypto.limits import ID_MAX


class Command(BaseCommand):
    help = ("Create an API key bound to CLIENT_ID. The key is printed once (first line) and stored "
            "only as a SHA-256 hash; the bot sends it as gRPC metadata 'x-api-key'.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client_id", help=f"the bot's client_id (1-{ID_MAX} characters)")

    def handle(self, *args: Any, **options: Any) -> None:
        client_id = options["client_id"]
        try:
            validate_client_id(client_id)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        key = issue_client_key(client_id)
        self.stdout.write(key)
        self.stdout.write(usage_hint(client_id))


def usage_hint(client_id: str) -> str:
    return (f"Use it as gRPC metadata '{API_KEY_HEADER}: <key>' on ConnectClient with client_id={client_id!r}; "
            "it is stored hashed and will not be shown again.")
