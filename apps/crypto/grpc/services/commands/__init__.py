"""Operator-side command client: send DjangoCommands to connected bots, async or blocking.

    async with CryptoStreamingCommandClient.from_env() as client:
        ack = await pause(client, "bot-1", reason="maintenance")

    with connect_sync() as client:                      # sync Django code
        ack = client.execute("bot-1", build_command("ping", sequence=1))

    async with CryptoStreamingCommandClient.from_env() as client:    # a fleet command (BroadcastCommand)
        outcome = await client.broadcast(selector(all_connected=True), build_pause("maintenance"))

The command passed in is never changed. Leave command_id empty and the server generates it: it comes
back in SendCommandResponse.command_id (send) or CommandAck.command_id (execute).
"""

from .base import CommandClientError, StreamingCommandClient, outgoing, with_command_id
from .base_client import (
    BroadcastOutcome,
    CommandResult,
    CryptoStreamingCommandClient,
    connect_sync,
    default_target,
    default_token,
    selector,
)
from .pause import build_pause, pause
from .ping import build_ping, ping
from .registry import COMMAND_BUILDERS, CommandBuilder, build_command, builder_params
from .request_status import build_request_status, request_status
from .resume import build_resume, resume
from .sync import SyncCommandClient
from .sync_wallets import build_sync_wallets, sync_wallets

__all__ = [
    "BroadcastOutcome", "COMMAND_BUILDERS", "CommandBuilder", "CommandClientError", "CommandResult",
    "CryptoStreamingCommandClient",
    "StreamingCommandClient", "SyncCommandClient", "build_command", "build_pause", "build_ping",
    "build_request_status", "build_resume", "build_sync_wallets", "builder_params", "connect_sync",
    "default_target", "default_token", "outgoing", "pause", "ping", "request_status", "resume", "selector",
    "sync_wallets", "with_command_id",
]
