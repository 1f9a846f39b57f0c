"""SPEC §8: every mail and page template, the customer's and the built-in ones, renders with sample
values at start; a broken one stops the start with one message naming its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SAMPLE_VIEW
from tests.fakes import FakeStore
from warehouse_core.adapters.jinja_mail import BUILT_IN, JinjaMailRenderer
from warehouse_core.bootstrap import bootstrap
from warehouse_core.errors import ConfigurationError
from warehouse_core.model import MailEvent
from warehouse_core.usecases.mails import mail_template_sample
from warehouse_web.app import check_page_templates, create_app

PAGES = [
    p
    for p in (Path(__file__).resolve().parents[2] / "src" / "warehouse_web" / "templates").iterdir()
    if p.suffix in (".html", ".txt")
]


def customer(tmp_path, files):
    folder = tmp_path / "customer-templates"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def core_with(make_settings, folder=None):
    settings = make_settings(templates_dir=str(folder)) if folder else make_settings()
    return bootstrap(settings, store=FakeStore(invoice_view=SAMPLE_VIEW))


def test_every_built_in_mail_template_is_rendered_with_sample_values_not_only_compiled():
    rendered = []

    def sample(name):
        values = mail_template_sample(name)
        if values is not None:
            rendered.append(name)
        return values

    checked = JinjaMailRenderer().check(sample)
    expected = sorted("mail/{}.{}".format(e.value, s) for e in MailEvent for s in ("subject.txt", "txt", "html"))
    assert sorted(rendered) == expected
    assert checked == len(list(BUILT_IN.rglob("*.txt")) + list(BUILT_IN.rglob("*.html")))


def test_every_built_in_page_renders_with_sample_values(make_settings):
    app = create_app(core=core_with(make_settings))
    assert check_page_templates(app) == len(PAGES)


@pytest.mark.parametrize(
    "text, line, reason",
    [
        (
            '{% extends "base.html" %}\n{% block main %}\n{% for day in page.days %}\n{{ day.day }\n{% endfor %}{% endblock %}',
            4,
            "unexpected '}'",
        ),
        (
            '{% extends "base.html" %}\n{% block main %}\n{% for day in page.days %}\n{{ day.files.first.name }}\n{% endfor %}{% endblock %}',
            4,
            "has no attribute 'first'",
        ),
    ],
    ids=["syntax", "undefined-attribute"],
)
def test_a_broken_customer_page_stops_the_web_start_naming_its_file_and_line(
    make_settings, tmp_path, text, line, reason
):
    folder = customer(tmp_path, {"days.html": text})
    core = core_with(make_settings, folder) if "unexpected" not in reason else None
    if core is None:  # a syntax error: the mail check, which compiles every file of the folder, stops it first
        with pytest.raises(ConfigurationError) as caught:
            core_with(make_settings, folder)
    else:
        with pytest.raises(ConfigurationError) as caught:
            create_app(core=core)
    message = str(caught.value)
    assert "\n" not in message
    assert "{}, line {}".format(folder / "days.html", line) in message and reason in message


def test_a_sound_customer_page_passes(make_settings, tmp_path):
    folder = customer(
        tmp_path,
        {"error.html": '{% extends "base.html" %}{% block main %}Errore {{ status }}: {{ text }}{% endblock %}'},
    )
    assert check_page_templates(create_app(core=core_with(make_settings, folder))) == len(PAGES)
