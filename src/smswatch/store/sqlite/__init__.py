"""The SQLite back end: a log file, its state file and its outbox file (a path for `--db`)."""
