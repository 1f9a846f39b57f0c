"""The routes: parse the request, call the use case, map domain errors to HTTP answers."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)

from warehouse_core import reasons
from warehouse_core.audit import operator_actor
from warehouse_core.bootstrap import Core
from warehouse_core.errors import Conflict, InvalidFile, PayloadTooLarge
from warehouse_core.model import FileStatus, WorkSession
from warehouse_web import security

blueprint = Blueprint("warehouse", __name__)


def core() -> Core:
    return current_app.extensions["warehouse_core"]  # type: ignore[no-any-return]


def message(code: str, **values: Any) -> str:
    """An operator-visible sentence, from the core's templates/messages.txt (which the customer may replace)."""
    return core().sentences.text(code, **values)


def said(problems: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each problem's reason in WAREHOUSE_LANGUAGE, for the page that lists them (recorded in English)."""
    gettext = core().translations.gettext
    return [dict(problem, reason=reasons.translate(str(problem["reason"]), gettext)) for problem in problems]


def status_object(session_: WorkSession, earlier: Sequence[WorkSession] = ()) -> Dict[str, Any]:
    status = session_.as_dict()
    status["message"] = " ".join(render_template("status_message.txt", session=session_).split())
    status["earlier"] = [earlier_day(day) for day in earlier]
    return status


def earlier_day(session_: WorkSession) -> Dict[str, Any]:
    """An earlier day that still needs someone, as the status object lists it (SPEC §7)."""
    whole = session_.as_dict()
    return {key: whole[key] for key in ("day", "state", "delivery", "detail")}


def current_status() -> Dict[str, Any]:
    """The status object: today's session and the earlier days, read together."""
    today, earlier = core().status()
    return status_object(today, earlier)


class StatusCache:
    """The status object, shared by every poller for a quarter of a second: the page asks every two
    seconds per operator, and a request served from here costs no database round trip. Any action
    of this process clears it; progress written by another process shows at most 0.25 s late."""

    TTL = 0.25

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Optional[Dict[str, Any]] = None
        self._expires = 0.0

    def get(self, load: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        with self._lock:
            if self._value is None or time.monotonic() >= self._expires:
                self._value = load()
                self._expires = time.monotonic() + self.TTL
            return dict(self._value)

    def clear(self) -> None:
        with self._lock:
            self._value = None


def status_cache() -> StatusCache:
    return current_app.extensions.setdefault("warehouse_status_cache", StatusCache())  # type: ignore[no-any-return]


def actor() -> str:
    """Who pressed the button (SPEC §7): the login name, else anonymous@<address>."""
    return operator_actor(g.get("operator"), request.remote_addr)


# The actions the page offers and, for each state that refuses one, the refusal's message code
# (the §5 table); the page shows the button disabled with that sentence beside it.
REFUSED_IN = {
    "start": {
        "none": "no_data",
        "running": "running",
        "completed": "completed",
        "failed": "failed",
        "closed": "closed",
    },
    "close": {"none": "no_data", "completed": "completed", "closed": "closed"},
    "upload": {state: "day_has_data" for state in ("ready", "running", "completed", "failed", "closed")},
}


def refusal_texts() -> Dict[str, str]:
    """``action-state`` -> the sentence, with ``{day}`` for the page's script to fill in."""
    return {
        "{}-{}".format(action, state): message(code, day="{day}")
        for action, states in REFUSED_IN.items()
        for state, code in states.items()
    }


def conflict(error: Conflict, day: dt.date) -> Tuple[Any, int]:
    values = dict({"day": day.isoformat()}, **error.values)
    return jsonify(error=message(error.code, **values)), 409


@blueprint.get("/")
def index() -> Any:
    status = current_status()
    # For a 413 that is not the app's own: a body past what waitress reads, or a proxy's limit.
    too_large = message("too_large", limit_mb=core().settings.max_upload_mb)
    return render_template(
        "index.html", status=status, refusals=refusal_texts(), refused_in=REFUSED_IN, too_large=too_large
    )


@blueprint.get("/favicon.ico")
def favicon() -> Any:
    """The icon for a browser that asks /favicon.ico whatever the page links: no login, no 404."""
    return send_from_directory(
        current_app.static_folder or "static", "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


@blueprint.get("/healthz")
def healthz() -> Any:
    if core().store.ping():
        return jsonify(status="ok"), 200
    return jsonify(status="database unavailable"), 503


@blueprint.get("/api/session")
def get_session() -> Any:
    return jsonify(status_cache().get(current_status))


@blueprint.after_app_request
def forget_status_after_an_action(response: Any) -> Any:
    if request.method == "POST":
        status_cache().clear()
    return response


@blueprint.post("/api/session/start")
def start_session() -> Any:
    now = core().clock.now()
    try:
        core().start_session(now, actor=actor())
    except Conflict as error:
        return conflict(error, now.date())
    return jsonify(current_status()), 202


@blueprint.post("/api/session/close")
def close_session() -> Any:
    now = core().clock.now()
    try:
        core().close_session(now, actor=actor())
    except Conflict as error:
        return conflict(error, now.date())
    return jsonify(current_status()), 200


# Earlier days (SPEC §5 "Earlier days are never out of reach"): the same rules, codes and audit as
# today's buttons, for the day in the path. The answer is the status object, today's with its list.


def _path_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        abort(404)


@blueprint.post("/api/days/<day>/start")
def start_day(day: str) -> Any:
    wanted = _path_day(day)
    try:
        core().start_session(core().clock.now(), actor=actor(), day=wanted)
    except Conflict as error:
        return conflict(error, wanted)
    return jsonify(current_status()), 202


@blueprint.post("/api/days/<day>/close")
def close_day(day: str) -> Any:
    wanted = _path_day(day)
    try:
        core().close_session(core().clock.now(), actor=actor(), day=wanted)
    except Conflict as error:
        return conflict(error, wanted)
    return jsonify(current_status()), 200


@blueprint.post("/api/session/upload")
def upload() -> Any:
    now = core().clock.now()
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        return jsonify(error=message("no_file"), problems=[]), 400
    try:
        summary = core().import_upload(upload_file.filename, upload_file.stream, now, actor=actor())
    except Conflict as error:
        return conflict(error, now.date())
    except PayloadTooLarge as error:
        return jsonify(error=message(error.code, **error.values)), 413
    except InvalidFile as error:
        return jsonify(
            error=message(error.code, **error.values), problems=said(p.as_dict() for p in error.problems)
        ), 400
    if summary.status is FileStatus.REJECTED:
        body = summary.as_dict()
        body["problems"] = said(body.get("problems") or [])
        body["error"] = message("rejected", file=summary.file_name, count=summary.problem_count)
        return jsonify(body), 400
    body = summary.as_dict()
    body["message"] = message("imported", file=summary.file_name, stored=summary.stored_lines)
    return jsonify(body), 201


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> Any:
    operators = {user: h.get_secret_value() for user, h in core().settings.operators.items()}
    if not operators:
        return redirect(url_for("warehouse.index"))
    error = None
    if request.method == "POST":
        user = request.form.get("username", "")
        if security.password_ok(operators, user, request.form.get("password", "")):
            session.clear()
            session[security.USER_SESSION_KEY] = user
            return redirect(url_for("warehouse.index"))
        error = message("bad_login")
        current_app.extensions[security.THROTTLE_KEY].failed(request.remote_addr or "unknown")
    return render_template("login.html", error=error), (401 if error else 200)


@blueprint.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("warehouse.login"))
