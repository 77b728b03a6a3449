"""Per-stream state and the ConnectClient flow."""
