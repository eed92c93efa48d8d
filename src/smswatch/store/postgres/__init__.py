"""The PostgreSQL back end: several `serve` instances on one database (`--db postgresql://…`)."""
