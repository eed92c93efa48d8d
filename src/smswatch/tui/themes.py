"""Theme files (TOML) → Textual themes plus the colour of each delivery state.

Built-in themes ship in `themes/` (dark, light, high-contrast); a user adds their own as
`<config dir>/themes/NAME.toml`, and one with a built-in's name replaces it. A file that does not
load is skipped with a reason, never fatal. The last theme chosen is remembered.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.theme import Theme

from smswatch.core.domain import State
from smswatch.paths import config_dir, state_file

DEFAULT = "dark"
_PACKAGE_THEMES = Path(__file__).resolve().parent.parent / "themes"  # installed wheel
_REPO_THEMES = Path(__file__).resolve().parents[3] / "themes"  # source checkout
_THEME_KEYS = {
    "name",
    "dark",
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "luminosity_spread",
    "text_alpha",
    "variables",
}
_FALLBACK_STATES = {
    State.QUEUED: "#8A93A3",
    State.PROCESSING: "#6FB7F0",
    State.SENT: "#E6C75A",
    State.DELIVERED: "#5CC98A",
    State.FAILED: "#F0605D",
    State.UNCONFIRMED: "#E8A15C",
    State.UNKNOWN: "#C792EA",
}


@dataclass(frozen=True)
class Palette:
    """Colours the Line-API widgets need directly (CSS covers the rest)."""

    states: dict[State, str]
    dark: bool

    def state(self, state: State | None) -> str:
        return self.states[state or State.UNKNOWN]


@dataclass(frozen=True)
class LoadedTheme:
    theme: Theme
    palette: Palette
    source: Path


def theme_dirs() -> list[Path]:
    builtin = _PACKAGE_THEMES if _PACKAGE_THEMES.is_dir() else _REPO_THEMES
    return [builtin, config_dir() / "themes"]


def load_theme(path: Path) -> LoadedTheme:
    with path.open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    states = data.pop("states", {})
    unknown = set(data) - _THEME_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    data.setdefault("name", path.stem)
    if "primary" not in data:
        raise ValueError("primary colour is required")
    colours = dict(_FALLBACK_STATES)
    for key, value in states.items():
        colours[State(key)] = str(value)
    theme = Theme(**data)
    theme.to_color_system()  # raises on a colour Textual cannot parse
    return LoadedTheme(theme, Palette(colours, theme.dark), path)


def load_themes() -> tuple[dict[str, LoadedTheme], list[str]]:
    """All themes by name, and a line for each file that could not be loaded."""
    themes: dict[str, LoadedTheme] = {}
    problems: list[str] = []
    for directory in theme_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                loaded = load_theme(path)
            except Exception as exc:  # a user's file: whatever is wrong with it, skip and say why
                problems.append(f"theme {path.name} skipped: {exc}")
                continue
            themes[loaded.theme.name] = loaded
    return themes, problems


def remembered() -> str | None:
    try:
        return json.loads(state_file().read_text()).get("theme")
    except (OSError, ValueError, AttributeError):
        return None


def remember(name: str) -> None:
    path = state_file()
    try:
        state = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(state, dict):
            state = {}
        state["theme"] = name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state))
    except (OSError, ValueError):
        pass  # remembering is a convenience; a read-only home must not break the UI
