"""gRPC side of the crypto app: contract (generated/), service (services/), bot client (examples/)."""
