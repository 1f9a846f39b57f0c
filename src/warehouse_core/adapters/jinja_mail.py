"""Mail bodies from Jinja2 templates; the customer's folder wins over the built-in one."""

from __future__ import annotations

import gettext
import re
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Tuple

import jinja2

from warehouse_core.adapters.catalogues import install
from warehouse_core.adapters.template_check import check_templates
from warehouse_core.model import MailEvent

# The note of a fallback goes right after the body's opening tag.
_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)
BUILT_IN = Path(__file__).resolve().parent.parent / "templates"


def template_loader(templates_dir: Optional[Path] = None) -> jinja2.BaseLoader:
    """The customer's folder first, then the built-in templates."""
    loaders: List[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(BUILT_IN)))
    return jinja2.ChoiceLoader(loaders)


def _environment(
    loader: jinja2.BaseLoader, translations: gettext.NullTranslations, language: str
) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    install(environment, translations, language)
    return environment


class JinjaMailRenderer:
    def __init__(
        self,
        templates_dir: Optional[Path] = None,
        translations: Optional[gettext.NullTranslations] = None,
        language: str = "en",
    ) -> None:
        translations = translations or gettext.NullTranslations()
        self.environment = _environment(template_loader(templates_dir), translations, language)
        self.built_in = _environment(template_loader(None), translations, language)

    def render(self, event: MailEvent, context: Mapping[str, Any], built_in: bool = False) -> Tuple[str, str, str]:
        environment = self.built_in if built_in else self.environment

        def part(suffix: str, name: str = event.value) -> str:
            return environment.get_template("mail/{}.{}".format(name, suffix)).render(context)

        subject = " ".join(part("subject.txt").split())
        text, html = part("txt"), part("html")
        if built_in and "template_error" in context:  # the mail says that it fell back, and why
            text = part("txt", "_template-error") + text
            note, body = part("html", "_template-error"), _BODY.search(html)
            html = html[: body.end()] + note + html[body.end() :] if body else note + html
        return subject, text, html

    def check(self, sample: Callable[[str], Optional[Mapping[str, Any]]]) -> int:
        """SPEC §8, at start: every template of both folders compiles, and each one ``sample`` has
        values for renders with them; ConfigurationError naming the first broken file and line."""
        return check_templates(self.environment, sample)
