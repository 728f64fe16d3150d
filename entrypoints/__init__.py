"""Entry points: Lambda handlers, the local gateway, the CLI and the one composition root."""
