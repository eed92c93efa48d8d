"""Simulated traffic, the gateways' sandbox, the demo and replay: tooling, not the runtime path."""
