"""The demo panel of ``make run`` only: the mails the local SMTP server kept, and a poll-now button.

It is no part of the product: ``install`` adds it to an app built by ``warehouse_web.create_app``,
and only the demo stack calls it. Its templates and script live next to this module.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Dict, List

from flask import Blueprint, Flask, abort, current_app, jsonify, render_template

from warehouse_core.bootstrap import Core
from warehouse_web.app import PAGE_PANELS_KEY

demo = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates", static_folder="static")
CONFIG_KEY = "WAREHOUSE_DEMO_MAIL_DIR"
PANEL_TEMPLATE = "demo_panel.html"


def install(app: Flask, mail_dir: Path) -> None:
    """Serve the panel on ``app``: its routes under /demo, and the panel at the foot of the page."""
    app.config[CONFIG_KEY] = str(mail_dir)
    app.config[PAGE_PANELS_KEY] = list(app.config.get(PAGE_PANELS_KEY, ())) + [PANEL_TEMPLATE]
    app.register_blueprint(demo)


def mail_dir() -> Path:
    return Path(current_app.config[CONFIG_KEY])


def _read(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def mails() -> List[Dict[str, Any]]:
    found = []
    for path in sorted(mail_dir().glob("*.eml"), reverse=True):
        message = _read(path)
        found.append(
            {
                "name": path.name,
                "event": message.get("X-Warehouse-Event", ""),
                "subject": message.get("Subject", ""),
                "date": message.get("Date", ""),
            }
        )
    return found


def _mail_path(name: str) -> Path:
    path = mail_dir() / name
    if "/" in name or not name.endswith(".eml") or not path.is_file():
        abort(404)
    return path


@demo.get("/mail")
def mail_list() -> Any:
    return jsonify(mails=mails())


@demo.get("/mail/<name>")
def mail_view(name: str) -> Any:
    message = _read(_mail_path(name))
    text = message.get_body(preferencelist=("plain",))
    return render_template(
        "demo_mail.html",
        name=name,
        message=message,
        text=text.get_content() if text is not None else "",
    )


@demo.get("/mail/<name>/html")
def mail_html(name: str) -> Any:
    part = _read(_mail_path(name)).get_body(preferencelist=("html",))
    if part is None:
        abort(404)
    response = current_app.response_class(part.get_content(), mimetype="text/html")
    # The mail's own HTML, shown as it is: inline styles allowed, nothing else.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response


@demo.post("/poll")
def poll_now() -> Any:
    core: Core = current_app.extensions["warehouse_core"]
    now = core.clock.now()
    report = core.ingest_daily_file(now)
    core.deliver_outbox(now)
    return jsonify(message=report.describe())
