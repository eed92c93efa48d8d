"""The viewers' feed: the engine's live state over WebSocket (server) and the source
that `smswatch attach` reads it through (client)."""
