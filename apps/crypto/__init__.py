"""Crypto bots: persistence, admin and the gRPC streaming service."""
