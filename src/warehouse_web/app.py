"""The Flask app factory: configuration, error pages, security hooks; the routes are in views.py."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import jinja2
from flask import Flask, Response, g, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from warehouse_core.adapters.catalogues import install
from warehouse_core.adapters.template_check import check_templates
from warehouse_core.bootstrap import Core, bootstrap
from warehouse_core.errors import DatabaseUnavailable
from warehouse_core.settings import load_settings
from warehouse_web import security
from warehouse_web.history import history
from warehouse_web.samples import page_sample
from warehouse_web.views import blueprint, message

log = logging.getLogger(__name__)
ISO_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
# Room for the multipart envelope around a file of exactly the configured size.
MULTIPART_OVERHEAD = 64 * 1024
PUBLIC_ENDPOINTS = {"warehouse.login", "warehouse.favicon", "warehouse.healthz", "history.metrics_endpoint", "static"}
# Extra templates included at the foot of the page, in order (the demo stack of ``make run`` adds its panel).
PAGE_PANELS_KEY = "WAREHOUSE_PAGE_PANELS"


def create_app(config: Optional[Mapping[str, Any]] = None, *, core: Optional[Core] = None) -> Flask:
    """The web app around ``core`` (built from the WAREHOUSE_* environment when not given)."""
    if core is None:
        core = bootstrap(load_settings())
    settings = core.settings
    app = Flask(__name__)
    app.extensions["warehouse_core"] = core
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    if secret is None:
        log.warning("WAREHOUSE_SECRET_KEY is not set: a random key is used, so logins end at every restart")
        secret = secrets.token_urlsafe(32)
    app.config.update(
        # Never the interactive debugger, whatever FLASK_DEBUG says; development may pass DEBUG in config.
        DEBUG=False,
        SECRET_KEY=secret,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
    )
    app.config.update(dict(config or {}))
    app.debug = bool(app.config["DEBUG"])
    if settings.templates_dir is not None:
        # The customer's templates win over the built-in ones: they localise the page.
        app.jinja_loader = jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(str(Path(settings.templates_dir))),
                jinja2.FileSystemLoader(str(Path(app.root_path) / "templates")),
            ]
        )
    install(app.jinja_env, core.translations, settings.language)
    app.jinja_env.filters["keep_dates_whole"] = keep_dates_whole
    app.jinja_env.filters["wrap_points"] = wrap_points
    operators: Dict[str, str] = {user: h.get_secret_value() for user, h in settings.operators.items()}
    if not operators:
        log.warning("WAREHOUSE_OPERATORS is not set: the page and the API are open to everyone who can reach them")
    app.session_interface = security.SessionCookies()
    # No ProxyFix here: it would believe X-Forwarded-Proto from anyone. waitress (warehouse-web)
    # believes the forwarding headers of WAREHOUSE_TRUSTED_PROXY only and sets the scheme itself.
    app.extensions[security.THROTTLE_KEY] = security.LoginThrottle(core.clock.now)
    app.register_blueprint(blueprint)
    app.register_blueprint(history)
    _install_hooks(app, operators)
    _install_error_handlers(app)
    check_page_templates(app)
    return app


def keep_dates_whole(text: Any) -> Markup:
    """``text`` escaped, each ISO date in a span that the line never breaks at its hyphens."""
    return Markup(ISO_DATE.sub(r'<span class="date">\1</span>', str(escape(text))))


def wrap_points(text: Any) -> Markup:
    """``text`` escaped, with a line-break opportunity after each ``_`` and ``/`` of a long file name or path,
    so that a narrow screen wraps ``Spedizioni20261126_123.txt`` at its parts, not letter by letter."""
    return Markup(str(escape(text)).replace("_", "_<wbr>").replace("/", "/<wbr>"))


def check_page_templates(app: Flask) -> int:
    """SPEC §8, at start: every page template, the customer's and the built-in ones, renders with
    sample values (inside a request, as the views render them); a broken one raises
    ConfigurationError naming its file and line. How many templates were checked."""
    with app.test_request_context("/"):
        return check_templates(
            app.jinja_env, page_sample, render=lambda template, values: render_template(template, **values)
        )


def _install_hooks(app: Flask, operators: Dict[str, str]) -> None:
    throttle: security.LoginThrottle = app.extensions[security.THROTTLE_KEY]

    @app.before_request
    def guard() -> Optional[Any]:
        # Behind WAREHOUSE_TRUSTED_PROXY, waitress has put the client's own address here.
        address = request.remote_addr or "unknown"
        if operators and _login_attempt():
            wait = throttle.retry_after(address)
            if wait is not None:
                return _too_many_logins(wait)
        g.operator = security.current_operator(operators, lambda: throttle.failed(address)) if operators else None
        if operators and g.operator is None and request.endpoint not in PUBLIC_ENDPOINTS:
            if request.path.startswith("/api/"):
                response = jsonify(error=message("login_required"))
                response.status_code = 401
                response.headers["WWW-Authenticate"] = 'Basic realm="warehouse"'
                return response
            return redirect(url_for("warehouse.login"))
        if request.method == "POST":
            if request.content_length is not None and request.content_length > (app.config["MAX_CONTENT_LENGTH"] or 0):
                raise RequestEntityTooLarge()
            if not security.csrf_valid():
                return _error(403, message("csrf"))
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        return security.add_security_headers(response)

    @app.context_processor
    def template_globals() -> Dict[str, Any]:
        return {
            "csrf_token": security.csrf_token,
            "operator": g.get("operator"),
            "login_enabled": bool(operators),
            "page_panels": tuple(app.config.get(PAGE_PANELS_KEY, ())),
        }


def _login_attempt() -> bool:
    return security.basic_credentials() is not None or (
        request.endpoint == "warehouse.login" and request.method == "POST"
    )


def _too_many_logins(wait_seconds: int) -> Any:
    text = message("too_many_logins", minutes=(wait_seconds + 59) // 60)
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        response = jsonify(error=text)
    else:
        response = Response(render_template("login.html", error=text), mimetype="text/html")
    response.status_code = 429
    response.headers["Retry-After"] = str(wait_seconds)
    return response


def _error(status: int, text: str) -> Any:
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        response = jsonify(error=text)
        response.status_code = status
        return response
    return render_template("error.html", status=status, text=text), status


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Any:
        core: Core = app.extensions["warehouse_core"]
        return _error(413, message("too_large", limit_mb=core.settings.max_upload_mb))

    @app.errorhandler(DatabaseUnavailable)
    def database_unavailable(error: DatabaseUnavailable) -> Any:
        # Expected while PostgreSQL is down or restarting: one log line, no stack trace.
        log.warning("%s %s: %s", request.method, request.path, error)
        return _error(503, message("database_unavailable"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        return _error(error.code or 500, message("http_error", status=error.code, name=error.name))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        # The details go to the log; a browser never sees a stack trace.
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, message("internal_error"))
