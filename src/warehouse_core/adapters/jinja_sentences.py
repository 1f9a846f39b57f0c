"""Operator sentences from ``templates/messages.txt``: the one definition of every refusal's wording,
used by the web page and the command line, in the language of WAREHOUSE_LANGUAGE (its catalogue);
a ``messages.txt`` in the customer's folder wins."""

from __future__ import annotations

import gettext
from pathlib import Path
from typing import Any, Optional

import jinja2

from warehouse_core.adapters.catalogues import install
from warehouse_core.adapters.jinja_mail import template_loader


class JinjaSentences:
    def __init__(
        self,
        templates_dir: Optional[Path] = None,
        translations: Optional[gettext.NullTranslations] = None,
        language: str = "en",
    ) -> None:
        # Not strict: a sentence given fewer values than it names still reads, with a blank.
        self.environment = jinja2.Environment(loader=template_loader(templates_dir), autoescape=False)
        install(self.environment, translations or gettext.NullTranslations(), language)

    def text(self, code: str, **values: Any) -> str:
        sentence = self.environment.get_template("messages.txt").module.text(code, **values)  # type: ignore[attr-defined]
        return " ".join(str(sentence).split())
