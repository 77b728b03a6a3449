"""CryptoStreamingService: streams, handlers, commands and the cross-replica bus."""
