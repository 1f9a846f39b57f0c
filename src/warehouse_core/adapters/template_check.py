"""Every template renders at start (SPEC §8): a broken one stops the start naming its file and line.

Generic over whatever templates exist: the environment's loaders are walked (the customer's
WAREHOUSE_TEMPLATES_DIR and the built-in folder), each template is compiled, and each one that
``sample`` has values for is rendered with them. A customer's mail template with a typo therefore
stops the service the day it is installed, instead of failing months later at the first alert.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, Callable, Mapping, Optional, Tuple

import jinja2

from warehouse_core.errors import ConfigurationError

Render = Callable[[jinja2.Template, Mapping[str, Any]], object]


def check_templates(
    environment: jinja2.Environment,
    sample: Callable[[str], Optional[Mapping[str, Any]]],
    render: Optional[Render] = None,
) -> int:
    """Compile every template the loaders list and render those ``sample`` gives values for (with
    ``render``, e.g. Flask's, else the template's own); how many were checked. The first broken
    one raises ConfigurationError naming its file and line."""
    names = sorted(name for name in environment.list_templates() if name.endswith((".txt", ".html")))
    for name in names:
        try:
            template = environment.get_template(name)
            values = sample(name)
            if values is not None:
                if render is None:
                    template.render(values)
                else:
                    render(template, values)
        except jinja2.TemplateSyntaxError as error:
            raise ConfigurationError(
                _broken(error.filename or name, error.lineno, error.message or str(error))
            ) from None
        except Exception as error:
            where, line = _template_frame(error, name)
            raise ConfigurationError(_broken(where, line, str(error) or type(error).__name__)) from None
    return len(names)


def _broken(path: str, line: Optional[int], reason: str) -> str:
    return "invalid configuration: the template {}{} does not render: {}".format(
        path, ", line {}".format(line) if line else "", " ".join(reason.split())
    )


def _template_frame(error: BaseException, name: str) -> Tuple[str, Optional[int]]:
    """The file and line of the innermost template frame of the error: Jinja puts the template's
    own file and line into the traceback's frames."""
    found: Tuple[str, Optional[int]] = (name, None)
    for frame in traceback.extract_tb(error.__traceback__):
        if not frame.filename.endswith(".py") and os.path.isfile(frame.filename):
            found = (frame.filename, frame.lineno)
    return found
