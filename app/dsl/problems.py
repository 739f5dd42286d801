"""Collecting every problem of a definition before reporting them all at once."""

from __future__ import annotations

from app.dsl.loading import Document
from app.dsl.reading.yaml_limits import MAX_PROBLEMS, capped
from app.errors import DefinitionError, Loc, Problem


class ProblemCollector:
    """Problems found so far, each placed at its line and column in the source; past
    `MAX_PROBLEMS`, only counted."""

    def __init__(self, document: Document | None = None) -> None:
        self._document = document
        self.problems: list[Problem] = []
        self._left_out = 0

    def add(self, loc: Loc, msg: str, type: str = "value_error") -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self._left_out += 1
            return
        position = self._document.position(loc) if self._document else None
        line, column = (position.line, position.column) if position else (None, None)
        self.problems.append(Problem(loc, msg, type, line, column))

    def raise_if_any(self) -> None:
        if self.problems:
            raise DefinitionError(capped(self.problems, self._left_out))
