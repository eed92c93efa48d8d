"""Webhooks in: HTTP framing, limits, TLS and backpressure; routing, auth and quarantine."""
