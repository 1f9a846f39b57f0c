"""Mail bodies from Jinja2 templates; the customer's folder wins over the built-in one."""

from __future__ import annotations

import gettext
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

import jinja2

from warehouse_core.adapters.catalogues import install
from warehouse_core.model import MailEvent

BUILT_IN = Path(__file__).resolve().parent.parent / "templates"


def template_loader(templates_dir: Optional[Path] = None) -> jinja2.BaseLoader:
    """The customer's folder first, then the built-in templates."""
    loaders: List[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(BUILT_IN)))
    return jinja2.ChoiceLoader(loaders)


class JinjaMailRenderer:
    def __init__(
        self,
        templates_dir: Optional[Path] = None,
        translations: Optional[gettext.NullTranslations] = None,
        language: str = "en",
    ) -> None:
        self.environment = jinja2.Environment(
            loader=template_loader(templates_dir),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        install(self.environment, translations or gettext.NullTranslations(), language)

    def render(self, event: MailEvent, context: Mapping[str, Any]) -> Tuple[str, str, str]:
        def part(suffix: str) -> str:
            return self.environment.get_template("mail/{}.{}".format(event.value, suffix)).render(context)

        subject = " ".join(part("subject.txt").split())
        return subject, part("txt"), part("html")
