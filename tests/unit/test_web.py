"""The Flask adapter through its test client, with the core on fakes."""

from __future__ import annotations

import io
import re

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import MALFORMED_SAMPLE, VALID_SAMPLE
from tests.unit.test_delivery_ledger import (
    CAN_ONLY_BE_CLOSED,
    NEXT,
    fails_in_renaming_without_an_answer,
    next_day_started,
    page,
    readable,
    session,
    started,
)
from warehouse_core.bootstrap import bootstrap
from warehouse_core.delivery_states import Delivery
from warehouse_core.model import SessionState
from warehouse_web import create_app

EXPORT = "Spedizioni20261126_6.txt"


@pytest.fixture
def app(world):
    return create_app({"TESTING": True}, core=world.core)


@pytest.fixture
def client(app):
    return app.test_client()


def csrf(client):
    page = client.get("/")
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)


def post(client, url, **kwargs):
    return client.post(url, headers={"X-CSRF-Token": csrf(client)}, **kwargs)


def upload(client, path=VALID_SAMPLE, name=None, data=None):
    body = {"file": (io.BytesIO(path.read_bytes() if data is None else data), name or path.name)}
    return post(client, "/api/session/upload", data=body, content_type="multipart/form-data")


def test_page_has_the_four_actions_the_status_line_and_a_csrf_token(client):
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for label in ("Start session", "Check session status", "Close session", "Manual session upload"):
        assert label in html
    # The status line keeps the ISO date whole in a span (never broken at its hyphens).
    assert "No data for 2026-11-26 yet" in re.sub(r"<[^>]+>", "", html)
    assert '<meta name="csrf-token"' in html and "<script>" not in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"


def test_status_object_has_the_spec_keys(client):
    body = client.get("/api/session").get_json()
    assert body == {
        "day": "2026-11-26",
        "state": "none",
        "processed": 0,
        "total": 0,
        "message": "No data for 2026-11-26 yet - waiting for today's file",
        "export_file": None,
        "detail": None,
        "delivery": None,
        "earlier": [],
    }


def test_every_post_needs_the_csrf_token(client):
    for url in ("/api/session/start", "/api/session/close", "/api/session/upload"):
        refused = client.post(url)
        assert refused.status_code == 403 and "reload the page" in refused.get_json()["error"]
    client.get("/")
    assert client.post("/api/session/start", headers={"X-CSRF-Token": "forged"}).status_code == 403


def test_csrf_token_also_accepted_as_form_field(client):
    token = csrf(client)
    answer = client.post("/api/session/start", data={"csrf_token": token})
    assert answer.status_code == 409


def test_start_status_close_through_the_api(client, world):
    assert upload(client).status_code == 201
    world.importer_confirms()
    started = post(client, "/api/session/start")
    assert started.status_code == 202 and started.get_json()["state"] == "running"
    again = post(client, "/api/session/start")
    assert again.status_code == 409 and "already running" in again.get_json()["error"]
    world.work()
    status = client.get("/api/session").get_json()
    assert status["state"] == "completed" and (status["processed"], status["total"]) == (6, 6)
    assert status["export_file"] == "Spedizioni20261126_6.txt"
    assert "completed - 6 shipments exported" in status["message"]
    closed = post(client, "/api/session/close")
    assert closed.status_code == 409 and "completed" in closed.get_json()["error"]


def test_running_status_line_counts(client, world):
    upload(client)
    post(client, "/api/session/start")
    status = client.get("/api/session").get_json()
    assert status["message"] == "Session opened for 2026-11-26 - 0 shipments processed out of 0 total"
    assert post(client, "/api/session/close").get_json()["state"] == "closed"


def test_start_and_close_without_data_are_409(client):
    for url in ("/api/session/start", "/api/session/close"):
        answer = post(client, url)
        assert answer.status_code == 409 and "No data has been imported" in answer.get_json()["error"]


def test_upload_of_the_malformed_sample_is_400_with_each_line(client, world):
    answer = upload(client, MALFORMED_SAMPLE)
    assert answer.status_code == 400
    body = answer.get_json()
    assert "rejected" in body["error"]
    assert [p["line"] for p in body["problems"]] == [2, 3, 4, 5]
    assert body["problems"][1]["reason"] == "quantity 'forty' is not a whole number"
    assert client.get("/api/session").get_json()["state"] == "none"


def test_upload_with_wrong_declared_count_is_400(client):
    answer = upload(client, name="Letture20261126083015123_20.txt")
    assert answer.status_code == 400
    assert answer.get_json()["problems"][0]["reason"].startswith("the name declares 20 records")


def test_upload_refused_on_a_day_with_data(client):
    assert upload(client).status_code == 201
    refused = upload(client)
    assert refused.status_code == 409 and "manual upload is refused" in refused.get_json()["error"]


def test_an_upload_of_zero_bytes_is_400_and_leaves_nothing(client, world):
    answer = upload(client, name="empty.txt", data=b"")
    assert answer.status_code == 400
    body = answer.get_json()
    assert "empty" in body["error"] and body["problems"] == []
    assert world.store.data.files == [] and world.archive.files == {} and world.store.mails() == []
    assert client.get("/api/session").get_json()["state"] == "none"


def test_an_upload_whose_lines_are_all_ignored_is_imported(client, world):
    answer = upload(client, name="only-other-documents.txt", data=b"500000001|1|a|1.00\r\n\r\n700000002|2|b|2.00")
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert (body["stored_lines"], body["ignored_lines"], body["problems"]) == (0, 3, [])
    assert client.get("/api/session").get_json()["state"] == "ready"


def test_upload_without_file_is_400(client):
    answer = post(client, "/api/session/upload", data={}, content_type="multipart/form-data")
    assert answer.status_code == 400 and answer.get_json()["problems"] == []


def test_upload_over_the_limit_is_413(world, make_settings):
    core = bootstrap(
        make_settings(max_upload_mb=1),
        store=world.store,
        inbound=world.inbound,
        archive=world.archive,
        mailer=world.mailer,
        clock=world.clock,
        outbound=world.outbound,
        remote_log=world.remote_log,
        exports=world.exports,
    )
    client = create_app({"TESTING": True}, core=core).test_client()
    answer = upload(client, data=b"6" * (2 * 1024 * 1024))
    assert answer.status_code == 413 and "1 MB upload limit" in answer.get_json()["error"]


def test_odd_upload_names_never_leave_the_archive(client, world):
    assert upload(client, name="../../etc/Letture20261126083015123_9.txt").status_code == 201
    assert list(world.archive.files) == ["2026-11-26/Letture20261126083015123_9.txt"]


def test_binary_upload_is_rejected_not_an_error(client):
    # Its first line claims an invoice (it starts with 6) and is garbage. (Binary whose every line
    # is foreign would be a valid file of ignored lines, SPEC §5, like any other such file.)
    answer = upload(client, data=b"6" + bytes(range(256)) * 10, name="blob.bin")
    assert answer.status_code == 400 and answer.get_json()["problems"]


def test_healthz(client, world):
    assert client.get("/healthz").status_code == 200
    world.store.available = False
    assert client.get("/healthz").status_code == 503


def test_database_down_is_503_with_a_plain_message_not_a_500(client, world, caplog):
    world.store.available = False
    api = client.get("/api/session")
    assert api.status_code == 503 and api.get_json()["error"].startswith("The database does not answer right now.")
    page = client.get("/")
    assert page.status_code == 503 and "The database does not answer right now." in page.get_data(as_text=True)
    assert "Traceback" not in caplog.text  # expected while PostgreSQL restarts: a warning, not a stack


def test_an_unexpected_error_shows_no_stack_trace(client, world):
    token = csrf(client)
    world.store.fail_transactions_with = RuntimeError("secret internals")
    answer = client.post("/api/session/start", headers={"X-CSRF-Token": token})
    assert answer.status_code == 500 and answer.get_json()["error"].startswith("Something went wrong on the server.")
    assert "secret internals" not in answer.get_data(as_text=True)
    assert "Traceback" not in answer.get_data(as_text=True)
    page = client.get("/nowhere")
    assert page.status_code == 404 and "Traceback" not in page.get_data(as_text=True)


@pytest.fixture
def guarded_client(world, make_settings):
    hashed = generate_password_hash("correct horse")
    core = bootstrap(
        make_settings(operators="anna:" + hashed),
        store=world.store,
        inbound=world.inbound,
        archive=world.archive,
        mailer=world.mailer,
        clock=world.clock,
        outbound=world.outbound,
        remote_log=world.remote_log,
        exports=world.exports,
    )
    return create_app({"TESTING": True}, core=core).test_client()


def test_with_operators_the_api_needs_a_login(guarded_client):
    answer = guarded_client.get("/api/session")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
    assert guarded_client.get("/").status_code == 302
    import base64

    good = base64.b64encode(b"anna:correct horse").decode()
    bad = base64.b64encode(b"anna:wrong").decode()
    assert guarded_client.get("/api/session", headers={"Authorization": "Basic " + bad}).status_code == 401
    assert guarded_client.get("/api/session", headers={"Authorization": "Basic " + good}).status_code == 200


def test_login_page_logs_in_and_out(guarded_client):
    page = guarded_client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = guarded_client.post("/login", data={"username": "anna", "password": "nope", "csrf_token": token})
    assert refused.status_code == 401 and "wrong password" in refused.get_data(as_text=True)
    assert guarded_client.post("/login", data={"username": "anna", "password": "correct horse"}).status_code == 403
    ok = guarded_client.post("/login", data={"username": "anna", "password": "correct horse", "csrf_token": token})
    assert ok.status_code == 302
    assert guarded_client.get("/api/session").status_code == 200
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = csrf(guarded_client)
    guarded_client.post("/logout", data={"csrf_token": token})
    assert guarded_client.get("/api/session").status_code == 401


def test_customer_templates_localise_the_page(world, make_settings, tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "status_message.txt").write_text("Nessun dato per il {{ session.day.isoformat() }}")
    core = bootstrap(
        make_settings(templates_dir=str(tmp_path / "tpl")),
        store=world.store,
        inbound=world.inbound,
        archive=world.archive,
        mailer=world.mailer,
        clock=world.clock,
        outbound=world.outbound,
        remote_log=world.remote_log,
        exports=world.exports,
    )
    client = create_app({"TESTING": True}, core=core).test_client()
    assert client.get("/api/session").get_json()["message"] == "Nessun dato per il 2026-11-26"


def test_status_is_shared_for_a_moment_and_forgotten_after_an_action(client, world, app):
    from warehouse_web.views import StatusCache

    loads = []
    cache = StatusCache()
    assert cache.get(lambda: loads.append(1) or {"n": len(loads)}) == {"n": 1}
    assert cache.get(lambda: loads.append(1) or {"n": len(loads)}) == {"n": 1}
    cache.clear()
    assert cache.get(lambda: loads.append(1) or {"n": len(loads)}) == {"n": 2}
    assert client.get("/api/session").get_json()["state"] == "none"
    assert upload(client).status_code == 201  # a POST: the cached "none" is forgotten at once
    assert client.get("/api/session").get_json()["state"] == "ready"


def test_the_favicon_is_served_without_a_login_and_linked_from_every_page(guarded_client):
    """No 404 on every page, and never the login page answered for the icon (SPEC §7)."""
    for url in ("/favicon.ico", "/static/favicon.svg"):
        icon = guarded_client.get(url)
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml", url
        assert icon.get_data(as_text=True).startswith("<svg")
    login = guarded_client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg"' in login


def test_a_refusal_is_said_once_beside_the_first_action_it_refuses(client):
    """With no data, Start and Close are refused for one reason: one sentence, beside Start; Close
    points to it (aria-describedby) and its own note stays empty and hidden."""
    html = client.get("/").get_data(as_text=True)
    sentence = "No data has been imported for"
    shown = re.findall(
        r'<span class="refusal" id="(\w+)-refusal">([^<]*(?:<span class="date">[^<]*</span>[^<]*)*)</span>', html
    )
    assert [action for action, text in shown if sentence in text] == ["start"]
    assert re.search(r'id="close"[^>]*disabled aria-describedby="start-refusal"', html)
    assert re.search(r'<span class="refusal" id="close-refusal" hidden></span>', html)


# --- What today's status line says while the delivery is open (review B finding 7) ----------------


def test_todays_status_line_says_a_closed_days_delivery_is_being_checked(client, world):
    """Today's worker asks for its rename and the server goes silent; the operator presses Close:
    the day is closed with delivery unknown (its invoices held; the runner keeps asking). The
    status line says so, not only "nothing more happens today"."""
    from tests.fakes import WorkerKilled

    upload(client)
    world.core.start_session(world.clock.now())
    world.outbound.on_renaming = lambda name: (_ for _ in ()).throw(WorkerKilled("killed after asking for the rename"))
    with pytest.raises(WorkerKilled):
        world.work()
    world.outbound.on_renaming = None
    world.outbound.unreachable = True
    body = post(client, "/api/session/close").get_json()
    assert body["state"] == "closed" and body["delivery"] == "unknown"
    assert body["message"] == (
        "Session for 2026-11-26 closed - its file may have reached the consumer: "
        "the service is checking with the outbound server"
    )
    page = client.get("/").get_data(as_text=True)
    assert "the service is checking with the outbound server" in page


def test_a_closed_day_whose_delivery_is_settled_says_only_that_nothing_more_happens(client):
    upload(client)
    post(client, "/api/session/start")
    body = post(client, "/api/session/close").get_json()
    assert body["message"] == "Session for 2026-11-26 closed - nothing more happens today"


# --- A running session's detail on the page: why it waits, a try that failed ----------------------


@pytest.mark.parametrize(
    "detail, shown",
    [
        (
            "waiting for the outbound server to say whether the export of 2026-11-25 reached the consumer",
            "waiting for the outbound server to say whether the export of 2026-11-25 reached the consumer",
        ),
        (
            "try 1 of 3 failed, retried in 2 s: disk full",
            "try 1 of 3 failed, retried in 2 s: disk full",
        ),
    ],
    ids=["waiting for an earlier day", "a try failed"],
)
def test_a_running_sessions_detail_shows_on_the_status_line_and_each_refresh(client, world, detail, shown):
    """A later day waiting for an earlier day's unknown delivery, or a try that failed: the
    operator sees it on the page and in the status object the page refreshes from."""
    upload(client)
    post(client, "/api/session/start")
    with world.store.unit_of_work() as uow:
        uow.update_session(world.clock.now().date(), detail=detail)
    status = client.get("/api/session").get_json()
    assert status["state"] == "running" and status["detail"] == detail
    assert status["message"] == (
        "Session opened for 2026-11-26 - 0 shipments processed out of {} total - {}".format(status["total"], shown)
    )
    page = client.get("/").get_data(as_text=True)
    line = re.search(r'<p id="status-line"[^>]*>(.*?)</p>', page, re.S).group(1)
    assert shown.replace("2026-11-25", '<span class="date">2026-11-25</span>') in line


# --- The status line after the worker moved on, and after a Close that came after the rename (review 2) ---


def test_the_status_line_does_not_keep_saying_a_try_failed_once_the_next_try_has_uploaded_the_file(world):
    """The page now shows a running session's detail. But update_session() drops None, so nothing
    ever clears it: after one unexpected error ("try 1 of 3 failed, retried in 2 s: ...") the next
    try exports, uploads and renames fine, and while the session watches the remote log (up to 15
    minutes) the status line still says the try failed and is retried. The same for "waiting for the
    outbound server to say whether the export of <earlier day> reached the consumer" after that day
    was settled: the operator reads that the session is waiting while it is long past it."""
    client = create_app({"TESTING": True}, core=world.core).test_client()
    upload(client)
    post(client, "/api/session/start")
    seen = []

    def disk_full_once(name):
        world.outbound.on_stored = None
        raise RuntimeError("disk full")

    world.outbound.on_stored = disk_full_once
    world.outbound.on_upload = lambda name, data: seen.append(client.get("/api/session").get_json())
    world.work()
    [watching] = seen  # the second try renamed the file into place; the watch begins
    assert watching["state"] == "running"
    assert "failed" not in watching["message"], watching["message"]  # fails now: "... - try 1 of 3 failed, ..."


def test_todays_status_line_says_the_file_was_delivered_when_the_close_came_after_the_rename(world):
    """The confirmation the operator accepted said "no export is sent". The Close came while the
    session watched the remote log: the file had reached the consumer, its invoices are recorded as
    exported and the detail (API) says so (SPEC §5). The page's status line says only "Session for
    2026-11-26 closed - nothing more happens today", the day page shows no detail for a closed day:
    the page never tells the operator that the export did go out."""
    from warehouse_core.delivery_states import Delivery
    from warehouse_core.model import SessionState

    client = create_app({"TESTING": True}, core=world.core).test_client()
    upload(client)
    world.core.start_session(world.clock.now())
    world.outbound.on_upload = lambda name, data: world.core.close_session(world.clock.now(), actor="anna")
    world.work()
    with world.store.unit_of_work() as uow:
        closed = uow.session(world.clock.now().date())
    assert closed.state is SessionState.CLOSED and closed.delivery is Delivery.YES
    assert "delivered" in (closed.detail or "")
    message = client.get("/api/session").get_json()["message"]
    assert EXPORT in message, message  # fails: "Session for 2026-11-26 closed - nothing more happens today"


def test_a_failed_tries_note_goes_once_the_resumed_watch_reads_the_log_again(world):
    """A try fails on an unexpected error while watching the remote log, after the rename: while
    the worker waits to try again the session's detail says so; the next try resumes the watch, and
    once the log answers again the note goes (the watch may last 15 minutes)."""
    client = create_app({"TESTING": True}, core=world.core).test_client()
    upload(client)
    post(client, "/api/session/start")
    broken = []

    def check():
        if broken:
            broken.pop()
            raise RuntimeError("the log's reader crashed")

    world.remote_log.check = check
    world.outbound.on_upload = lambda name, data: broken.append(True)
    details = []

    def wait(seconds):
        details.append(world.core.status(world.clock.now().date()).today.detail)
        return world.clock.wait(seconds)

    world.core.run_session.run_pending(wait)
    assert "try 1 of 4 failed" in details[0]  # waiting for the next try
    assert len(details) > 2 and set(details[1:]) == {None}, details[:3]


@pytest.mark.parametrize("language", ["it", "en"])
def test_the_page_does_not_tell_to_close_a_day_that_failed_waiting_for_an_earlier_days_delivery(make_world, language):
    """MEDIUM (lost). The 26th failed at its rename, the outbound server silent; on the 27th the
    operator presses Start, and the 27th fails after its tries "... whether the export of 2026-11-26
    reached the consumer: nothing was exported". Its alert (fixed in 9da1ec1) says: ops can retry it
    once the 26th is settled; do not close it, a closed day stays closed without an export. The page
    the operator looks at says the opposite: its Start refusal reads "The session for 2026-11-27
    failed: it can only be closed." ("ora può solo essere chiusa"), with the Close button beside
    it, and nothing on the page mentions the retry. An operator who does what the page says closes
    the 27th, and its invoices are never exported."""
    world = started(make_world, language)
    fails_in_renaming_without_an_answer(world)
    world.outbound.on_upload = None
    assert session(world).delivery is Delivery.UNKNOWN
    next_day_started(world, confirm=False)
    world.work()
    failed = session(world, NEXT)
    assert failed.state is SessionState.FAILED and "2026-11-26" in (failed.detail or "")
    [alert] = [mail for mail in world.store.mails("session-failed") if mail.day == NEXT]
    assert CAN_ONLY_BE_CLOSED[language] not in alert.text  # the mail: do not close it
    shown = readable(page(world))
    assert CAN_ONLY_BE_CLOSED[language] not in shown, shown
