"""Collecting every problem of a definition before reporting them all at once."""

from __future__ import annotations

from app.dsl.loading import Document
from app.errors import DefinitionError, Loc, Problem


class ProblemCollector:
    """Problems found so far, each placed at its line and column in the source."""

    def __init__(self, document: Document | None = None) -> None:
        self._document = document
        self.problems: list[Problem] = []

    def add(self, loc: Loc, msg: str, type: str = "value_error") -> None:
        position = self._document.position(loc) if self._document else None
        line, column = (position.line, position.column) if position else (None, None)
        self.problems.append(Problem(loc, msg, type, line, column))

    def raise_if_any(self) -> None:
        if self.problems:
            raise DefinitionError(self.problems)
