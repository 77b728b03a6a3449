"""Column sizes that the models and the wire checks share, stated once.

A leaf module (no Django imports) so code that runs before the app registry is ready can use them.
"""

from __future__ import annotations

from typing import Final

ID_MAX: Final = 128  # max_length of every id column: client_id, command_id, message_id, replica and operator ids
REASON_MAX: Final = 512  # RejectedMessage.reason max_length
