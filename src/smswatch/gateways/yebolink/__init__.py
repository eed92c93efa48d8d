"""YeboLink: its webhooks, its status API."""
