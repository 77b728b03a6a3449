"""Payload handlers: one module per ClientMessage payload.

The discovery hook grpc_handlers() lives in apps/crypto/grpc_handlers.py: it reaches up to the servicer
and the runtime, which build on these handlers, so here it would be an import cycle.
"""
