"""The command bus: which replica owns a client, delivery to it, and ack correlation.

One code path serves both modes: with REDIS_URL the bus talks to a real Redis shared by
the replicas; without it, to an in-process stand-in (fakeredis) inside a single replica.
"""
