"""smswatch: a terminal monitor for SMS delivery webhooks."""

__version__ = "0.1.0"
