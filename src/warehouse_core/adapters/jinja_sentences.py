"""Operator sentences from ``templates/messages.txt``: the one definition of every refusal's wording,
used by the web page and the command line; a ``messages.txt`` in the customer's folder wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import jinja2

from warehouse_core.adapters.jinja_mail import template_loader


class JinjaSentences:
    def __init__(self, templates_dir: Optional[Path] = None) -> None:
        # Not strict: a sentence given fewer values than it names still reads, with a blank.
        self.environment = jinja2.Environment(loader=template_loader(templates_dir), autoescape=False)

    def text(self, code: str, **values: Any) -> str:
        sentence = self.environment.get_template("messages.txt").module.text(code, **values)  # type: ignore[attr-defined]
        return " ".join(str(sentence).split())
