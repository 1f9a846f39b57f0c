from __future__ import annotations

from typing import Any, Protocol


class Sentences(Protocol):
    def text(self, code: str, **values: Any) -> str:
        """The one-line sentence an operator reads for ``code`` (a refusal, an outcome), on the page
        and on the command line alike; the customer may replace them to translate."""
