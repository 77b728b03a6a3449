"""`manage.py list_clients`: every connected client cluster-wide, with its replica."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.crypto.grpc.services.bus.cluster_view import cluster_view
from config.env import ENV


class Command(BaseCommand):
    help = "List connected clients across all replicas (from Redis presence)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args: Any, **options: Any) -> None:
        if not ENV.redis_url:
            raise CommandError("REDIS_URL is not set: in embedded mode the cluster view lives inside the one "
                               "replica's process; set REDIS_URL to the replicas' Redis")
        try:
            clients, replicas = cluster_view()
        except Exception as exc:
            raise CommandError(f"cannot read the cluster view from Redis: {type(exc).__name__}: {exc}") from exc
        if options["json"]:
            for row in clients:
                self.stdout.write(json.dumps({"client_id": row.client_id, "replica": row.replica,
                                              "connected_at": row.connected_at.isoformat(),
                                              "last_heartbeat": row.last_heartbeat.isoformat()}))
            return
        self.stdout.write(f"{len(clients)} clients on {len(replicas)} replicas")
        self.stdout.write(f"{'CLIENT':<36} {'REPLICA':<24} {'CONNECTED SINCE':<26} LAST HEARTBEAT")
        for row in clients:
            self.stdout.write(f"{row.client_id:<36} {row.replica:<24} {row.connected_at:%Y-%m-%d %H:%M:%S %Z}"
                              f"{'':<3} {row.last_heartbeat:%Y-%m-%d %H:%M:%S %Z}")
