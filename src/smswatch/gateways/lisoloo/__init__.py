"""Lisoloo: its webhooks, its status API."""
