"""The operator HTTP API under /api/crypto/: clients with their live state, and commands to them.

Served by the web tier (config/asgi.py) next to the admin; authenticated with the operator tokens
(CRYPTO_OPERATOR_TOKENS); commands go through the same gRPC command path as send_command.
"""
