"""Where smswatch keeps user files: config (themes, catalogue additions) and remembered state."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """`$SMSWATCH_CONFIG_DIR`, else `$XDG_CONFIG_HOME/smswatch`, else `~/.config/smswatch`."""
    explicit = os.environ.get("SMSWATCH_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "smswatch"


def default_config_file() -> Path:
    return config_dir() / "config.toml"


def state_file() -> Path:
    """Small JSON file for choices the TUI remembers (theme)."""
    return config_dir() / "state.json"
