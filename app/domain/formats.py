"""The two notations a flow definition may be written in."""

from __future__ import annotations

from typing import Literal

Format = Literal["yaml", "json"]
FORMATS: tuple[Format, ...] = ("yaml", "json")


def format_of_path(name: str) -> Format:
    """A definition file's format, by its suffix: `.json` is JSON, anything else YAML."""
    return "json" if name.lower().endswith(".json") else "yaml"


def format_named(name: str) -> Format:
    """The format a store kept by name (anything but "json" was read as YAML)."""
    return "json" if name == "json" else "yaml"
