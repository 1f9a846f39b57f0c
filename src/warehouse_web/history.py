"""The history pages, their downloads and JSON, and /metrics (SPEC §7): parse, call, answer."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, BinaryIO, Dict, Iterator, Optional

from flask import Blueprint, Response, abort, jsonify, render_template, request, stream_with_context

from warehouse_core import metrics
from warehouse_core.days import DaySummary
from warehouse_core.errors import InvalidArgument
from warehouse_core.model import safe_file_name
from warehouse_core.usecases import history as days
from warehouse_web.views import core, message

log = logging.getLogger(__name__)
history = Blueprint("history", __name__)
DOWNLOAD_CHUNK = 256 * 1024


def parse_day(text: Optional[str]) -> Optional[dt.date]:
    if text is None or text == "":
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        abort(404)
    return None  # not reached: abort raises


def the_day(text: str) -> dt.date:
    day = parse_day(text)
    assert day is not None
    return day


def limit_argument() -> int:
    return days.page_limit(request.args.get("limit", days.PAGE_SIZE))


@history.errorhandler(InvalidArgument)
def invalid_argument(error: InvalidArgument) -> Any:
    text = message(error.code, **error.values)
    if request.path.startswith("/api/"):
        return jsonify(error=text), 400
    return render_template("error.html", status=400, text=text), 400


def day_json(summary: DaySummary, with_events: bool = False) -> Dict[str, Any]:
    body = summary.as_dict()
    if with_events:
        session = summary.session
        body["session"] = session.as_dict() if session is not None else None
        body["failed_since"] = (
            session.finished_at.isoformat()
            if session is not None and session.state.value == "failed" and session.finished_at
            else None
        )
        body["files"] = [
            {
                "name": f.name,
                "source": f.source.value,
                "status": f.status.value,
                "received_at": f.received_at.isoformat(),
                "lines": f.lines,
                "problem_count": f.problem_count,
                "reasons": [p.as_dict() for p in f.reasons],
            }
            for f in summary.files
        ]
        body["events"] = [event.as_dict() for event in summary.events]
    return body


def not_found(error: days.NotFound, day: dt.date, api: bool) -> Any:
    text = message(error.code, day=day.isoformat())
    if api:
        response = jsonify(error=text)
        response.status_code = 404
        return response
    return render_template("error.html", status=404, text=text), 404


@history.get("/days")
def days_page() -> Any:
    page = days.list_days(core().store, before=parse_day(request.args.get("before")), limit=limit_argument())
    return render_template("days.html", page=page, today=core().clock.now().date())


@history.get("/days/<day>")
def day_page(day: str) -> Any:
    wanted = the_day(day)
    try:
        summary = days.day_detail(core().store, wanted)
    except days.NotFound as error:
        if wanted != core().clock.now().date():
            return not_found(error, wanted, api=False)
        summary = DaySummary(wanted)  # today's timeline, before anything happened
    return render_template("day.html", day=summary, check=summary.reconciliation())


@history.get("/api/days")
def api_days() -> Any:
    page = days.list_days(core().store, before=parse_day(request.args.get("before")), limit=limit_argument())
    return jsonify(days=[day_json(d) for d in page.days], next=page.next.isoformat() if page.next else None)


@history.get("/api/days/<day>")
def api_day(day: str) -> Any:
    wanted = the_day(day)
    try:
        summary = days.day_detail(core().store, wanted)
    except days.NotFound as error:
        return not_found(error, wanted, api=True)
    return jsonify(day_json(summary, with_events=True))


def _download(name: str, stream: BinaryIO, mimetype: str) -> Response:
    def chunks() -> Iterator[bytes]:
        with stream:
            for chunk in iter(lambda: stream.read(DOWNLOAD_CHUNK), b""):
                yield chunk

    response = Response(stream_with_context(chunks()), mimetype=mimetype)
    response.headers["Content-Disposition"] = 'attachment; filename="{}"'.format(safe_file_name(name) or "download.txt")
    return response


@history.get("/days/<day>/inbound")
def inbound_file(day: str) -> Any:
    wanted = the_day(day)
    try:
        name, stream = days.inbound_download(core().store, core().archive, wanted, request.args.get("name"))
    except days.NotFound as error:
        return not_found(error, wanted, api=False)
    return _download(name, stream, "text/plain")


@history.get("/days/<day>/export")
def export_file(day: str) -> Any:
    wanted = the_day(day)
    try:
        name, stream = days.export_download(core().store, core().exports, wanted)
    except days.NotFound as error:
        return not_found(error, wanted, api=False)
    return _download(name, stream, "text/plain")


@history.get("/days/<day>/problems.csv")
def problems(day: str) -> Any:
    wanted = the_day(day)
    try:
        rows = days.problems_csv(core().store, core().archive, wanted)
        first = next(rows)  # the header; NotFound comes before it
    except days.NotFound as error:
        return not_found(error, wanted, api=False)

    def body() -> Iterator[str]:
        yield first
        yield from rows

    response = Response(stream_with_context(body()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="problems-{}.csv"'.format(wanted.isoformat())
    return response


@history.get("/metrics")
def metrics_endpoint() -> Any:
    now = core().clock.now()
    try:
        snapshot = core().metrics_snapshot(now.date())
    except Exception:  # the database does not answer: say so rather than fail the scrape
        log.warning("metrics: the database cannot be read", exc_info=True)
        families = metrics.database_down_families()
    else:
        families = metrics.families(snapshot, now)
    return Response(metrics.exposition(families), content_type=metrics.CONTENT_TYPE)
