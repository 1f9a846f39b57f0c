"""The delivery ledger (SPEC §5, issue 18): what may have reached the consumer is never shipped again."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.conftest import SAMPLE_VIEW, VALID_SAMPLE, at
from tests.fakes import WorkerKilled
from warehouse_core.delivery_states import (
    DELIVERY_TRANSITIONS,
    PHASE_TRANSITIONS,
    Delivery,
    SessionPhase,
    allowed,
    needs_someone,
    phase_allowed,
)
from warehouse_core.errors import Conflict, TransferError
from warehouse_core.model import InvoiceStatus, SessionState
from warehouse_core.usecases.history import export_download
from warehouse_web import create_app

DAY = dt.date(2026, 11, 26)
NEXT = dt.date(2026, 11, 27)
EXPORT = "Spedizioni20261126_6.txt"
SHIPPED = {"600000001", "600000002", "600000005", "600000006", "600000007", "600000008"}
NEXT_FILE = "Letture20261127080000000_9.txt"


@pytest.fixture
def running(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    return world


def held(world, day=DAY):
    return {number for number, holder in world.store.data.exported if holder == day}


def session(world, day=DAY):
    with world.store.unit_of_work() as uow:
        return uow.session(day)


def next_day_started(world, confirm=True):
    """The same invoices in the next day's file, its session started."""
    world.inbound.files[NEXT_FILE] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-27T08:00")
    if confirm:
        world.outbound.on_upload = lambda name, data: world.remote_log.append(
            "importer-20261127.log", "{}: {} records read".format(name, data.count(b"\n"))
        )
    world.core.start_session(world.clock.now())


def shipped_by(world, day):
    """The invoice numbers of the day's export file on the outbound server."""
    names = [name for name in world.outbound.files if day.strftime("%Y%m%d") in name and not name.startswith(".")]
    return {line.split(b"|")[0].decode() for name in names for line in world.outbound.files[name].splitlines()}


def fails_before_the_rename_without_an_answer(world):
    """The rename is refused, and the server stops answering right then: the day fails in phase
    renaming not knowing that its temporary file is still there."""

    def silent_from_now_on(name):
        world.outbound.on_renaming = None
        world.outbound.refuse_rename_next = 1
        world.outbound.unreachable = True

    world.outbound.on_renaming = silent_from_now_on
    world.work()


def fails_in_renaming_without_an_answer(world):
    """Every rename's reply is lost and then the server stops answering (issue 18 item 2)."""
    world.outbound.lose_rename_reply_next = 3
    world.outbound.on_upload = lambda name, data: setattr(world.outbound, "unreachable", True)
    world.work()


# --- the table ------------------------------------------------------------------------------


def test_the_tables_name_every_state_and_yes_never_turns_no():
    """Yes goes only to unknown (a redelivery's rename, settled back to yes when it never arrived)."""
    assert set(PHASE_TRANSITIONS) == {None, *SessionPhase}
    assert set(DELIVERY_TRANSITIONS) == {None, *Delivery}
    assert DELIVERY_TRANSITIONS[Delivery.YES] == frozenset({Delivery.UNKNOWN})
    assert allowed(Delivery.UNKNOWN, Delivery.NO) and not allowed(Delivery.YES, Delivery.NO)
    assert needs_someone("closed", Delivery.UNKNOWN, False) and not needs_someone("closed", Delivery.YES, False)
    assert needs_someone("ready", None, True) and not needs_someone("ready", None, False)
    assert phase_allowed(SessionPhase.RENAMING, SessionPhase.SETTLING) and phase_allowed(None, SessionPhase.EXPORTING)
    assert phase_allowed(SessionPhase.WATCHING, SessionPhase.WATCHING)
    assert not phase_allowed(SessionPhase.WATCHING, SessionPhase.UPLOADING)


# --- item 1: held from the rename on ----------------------------------------------------------------


def test_the_invoices_are_held_and_the_delivery_unknown_in_the_transaction_that_commits_renaming(running):
    seen = []
    running.outbound.on_renaming = lambda name: seen.append((session(running).phase, session(running).delivery))
    running.outbound.on_upload = lambda name, data: seen.append(set(held(running)))
    running.work()
    assert seen[0] == (SessionPhase.RENAMING, Delivery.UNKNOWN)
    assert seen[1] == SHIPPED  # before the rename's reply: held, exactly as if exported
    assert session(running).delivery is Delivery.YES  # the rename went through


def test_a_close_that_sets_the_file_aside_releases_the_invoices_for_later_days(running):
    running.outbound.on_renaming = lambda name: running.core.close_session(running.clock.now())
    running.outbound.refuse_rename_next = 1  # the fence came first: the rename finds no file
    running.work()
    running.outbound.on_renaming = None
    closed = session(running)
    assert closed.state is SessionState.CLOSED and closed.delivery is Delivery.NO
    assert held(running) == set()
    next_day_started(running)
    running.work()
    assert session(running, NEXT).state is SessionState.COMPLETED and shipped_by(running, NEXT) == SHIPPED


def test_a_later_day_never_ships_what_an_earlier_day_closed_while_settling_delivered(running):
    """Issue 18 item 1: closed while settling, the server silent until the next day's Start."""
    running.outbound.on_upload = lambda name, data: (_ for _ in ()).throw(WorkerKilled("after the rename"))
    with pytest.raises(WorkerKilled):
        running.work()
    running.outbound.unreachable = True
    running.core.close_session(running.clock.now())
    assert session(running).delivery is Delivery.UNKNOWN and held(running) == SHIPPED
    next_day_started(running)
    waits = []

    def the_server_answers_after_the_first_wait(seconds):
        waits.append(session(running, NEXT).detail)
        running.outbound.unreachable = False
        return running.clock.wait(seconds)

    running.core.run_session.run_pending(the_server_answers_after_the_first_wait)
    assert "2026-11-26" in waits[0]  # the later session says which day it waits for
    assert session(running).delivery is Delivery.YES
    later = session(running, NEXT)
    assert later.state is SessionState.FAILED and "no records" in later.detail  # all held by the 26th
    assert shipped_by(running, NEXT) == set()


def test_a_later_day_ships_what_the_settling_proved_never_arrived(running):
    fails_before_the_rename_without_an_answer(running)
    assert (session(running).state, session(running).delivery) == (SessionState.FAILED, Delivery.UNKNOWN)
    running.outbound.unreachable = False
    next_day_started(running)
    running.work()  # the earlier day first: the temporary file is set aside, nothing arrived
    assert session(running).delivery is Delivery.NO and held(running) == set()
    assert session(running, NEXT).state is SessionState.COMPLETED and shipped_by(running, NEXT) == SHIPPED


# --- item 2: failed in renaming without an answer ----------------------------------------------


def test_a_day_failing_in_renaming_without_an_answer_stays_unknown_holds_and_the_runner_settles_it(running):
    fails_in_renaming_without_an_answer(running)
    failed = session(running)
    assert (failed.state, failed.phase, failed.delivery) == (
        SessionState.FAILED,
        SessionPhase.RENAMING,
        Delivery.UNKNOWN,
    )
    assert held(running) == SHIPPED
    running.work()  # still silent: still unknown
    assert session(running).delivery is Delivery.UNKNOWN
    running.outbound.unreachable = False
    running.work()
    assert session(running).delivery is Delivery.YES and held(running) == SHIPPED
    assert session(running).state is SessionState.FAILED  # the runner settles, it does not close


def test_the_runner_settles_unknown_days_whatever_their_date(running):
    fails_in_renaming_without_an_answer(running)
    running.outbound.unreachable = False
    running.clock.set(at("2027-01-20T10:00"))  # weeks later
    running.work()
    assert session(running).delivery is Delivery.YES


# --- item 3: retry records what it learns -------------------------------------------------------


def retry(world, redeliver=False, day=DAY):
    return world.core.retry_session(day, "the outbound server was down", "cli:ops", world.clock.now(), redeliver)


def test_a_retry_that_learns_the_file_went_through_records_yes_and_refuses(running):
    fails_in_renaming_without_an_answer(running)
    running.outbound.unreachable = False
    with pytest.raises(Conflict) as caught:
        retry(running)
    assert caught.value.code == "retry_delivered"
    assert "recorded as exported" in running.core.sentences.text(caught.value.code, **caught.value.values)
    assert session(running).delivery is Delivery.YES and session(running).state is SessionState.FAILED
    assert held(running) == SHIPPED


def test_a_retry_that_learns_the_file_never_arrived_releases_the_invoices(running):
    fails_before_the_rename_without_an_answer(running)
    running.outbound.unreachable = False
    assert retry(running).state is SessionState.READY
    assert session(running).delivery is Delivery.NO and held(running) == set()
    # What the retry learnt is in the day's timeline, before the retry itself.
    kinds = [e.kind.value for e in events(running)]
    assert kinds.index("delivery-settled") < kinds.index("session-retried"), kinds


def test_a_retry_while_the_server_cannot_say_is_refused_even_with_redeliver_and_loses_nothing(running):
    """Review 2b, finding 2 (lost): the rename's reply is lost and the server then stops answering:
    failed in phase renaming, delivery unknown, the temporary file still there (the rename never
    happened). A retry --redeliver used to record yes without proof (SPEC §5: yes only on proof of
    the rename); the redelivery's first try then removed the first run's temporary file, the only
    evidence, and when it never arrived either, six invoices that reached nobody stayed held as
    delivered for good. A redelivery needs the outbound server anyway: while it cannot say, the
    retry is refused with or without --redeliver, and nothing changes. Once it answers, the retry
    learns the truth (here: never arrived, the invoices released) and the day can be exported."""
    fails_before_the_rename_without_an_answer(running)
    for redeliver in (False, True):
        with pytest.raises(Conflict) as caught:
            retry(running, redeliver=redeliver)
        assert caught.value.code == "retry_unknown"
        assert (session(running).state, session(running).delivery) == (SessionState.FAILED, Delivery.UNKNOWN)
        assert held(running) == SHIPPED
    running.outbound.unreachable = False
    assert running.outbound.temporary(EXPORT) in running.outbound.files  # the rename never happened
    assert retry(running, redeliver=True).state is SessionState.READY
    assert session(running).delivery is Delivery.NO and held(running) == set()


# --- item 4: the failure path cannot fail ----------------------------------------------------


def test_a_broken_customer_alert_template_still_fails_the_day_with_the_built_in_alert(make_world, tmp_path, caplog):
    folder = tmp_path / "templates" / "mail"
    folder.mkdir(parents=True)
    (folder / "session-failed.txt").write_text("The session {{ day.isoformat() }} failed\n")
    (folder / "import-summary.txt").write_text("{{ day.isoformat() }}\n")
    world = make_world(templates_dir=str(tmp_path / "templates"))
    # Broken after the start (SPEC §8 refuses to start with them): edited in place, or failing
    # only on a day's real values; the mail still goes out, from the built-in template.
    (folder / "session-failed.txt").write_text("The session {{ day.isoformat( }} failed\n")
    (folder / "import-summary.txt").write_text("{{ no_such_value }}\n")
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    assert world.core.session_status().state is SessionState.READY  # the import was not rolled back
    [summary] = world.store.mails("import-summary")
    assert "built-in template" in summary.text and "no_such_value" in summary.text
    world.outbound.fail_next = 3
    world.core.start_session(world.clock.now())
    world.work()
    assert world.core.session_status().state is SessionState.FAILED
    [alert] = world.store.mails("session-failed")
    assert "built-in template" in alert.text and "failed after 3 tries" in alert.text
    assert "built-in template" in alert.html and alert.html.index("<body") < alert.html.index("built-in template")


def test_an_odd_server_reply_while_failing_still_fails_the_day_and_the_next_day_goes_on(running):
    running.outbound.lose_rename_reply_next = 3

    def an_odd_size_reply(name):
        raise ValueError("invalid literal for int() with base 10: '1,234'")

    running.outbound.temporary_present = an_odd_size_reply
    running.work()
    failed = session(running)
    assert failed.state is SessionState.FAILED and running.store.mails("session-failed")
    assert failed.delivery is Delivery.UNKNOWN and held(running) == SHIPPED


def test_one_days_broken_worker_never_holds_up_the_next_days(running, caplog):
    """An error the failure path cannot handle (here: the transaction that fails the day) is
    logged; the next day's session is worked all the same in the same round."""
    fail = running.core.run_session._fail

    def a_broken_failure_path(day, reason, *more):
        if day == DAY:
            raise RuntimeError("the failure path broke")
        fail(day, reason, *more)

    running.core.run_session._fail = a_broken_failure_path
    running.outbound.fail_next = 3
    for number, row in SAMPLE_VIEW.items():
        running.store.invoice_view["61" + number[2:]] = dict(row, invoice_number="61" + number[2:])
    running.inbound.files[NEXT_FILE] = (b"\n" + VALID_SAMPLE.read_bytes()).replace(b"\n60", b"\n61")[1:]
    running.poll("2026-11-27T08:00")
    running.core.start_session(running.clock.now())
    running.outbound.on_upload = lambda name, data: running.remote_log.append(
        "importer-20261127.log", "{}: {} records read".format(name, data.count(b"\n"))
    )
    running.work()
    assert session(running, NEXT).state is SessionState.COMPLETED
    assert "the failure path broke" in caplog.text


# --- item 5: two processes ------------------------------------------------------------------------


def test_an_earlier_day_running_after_its_rename_in_another_process_holds_its_invoices(make_world):
    """Worker A renamed the 26th's file into place and is waiting for the log (it holds the day's
    claim); worker B, in another process over the same database, works the 27th."""
    a = make_world()
    b = rebuild_over(make_world(), a)
    a.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    a.poll("2026-11-26T10:00")
    a.core.start_session(a.clock.now())
    a.core.run_session.run_pending(lambda seconds: True)  # A stops while watching: the day stays running
    assert session(a).phase is SessionPhase.WATCHING
    a.inbound.files[NEXT_FILE] = VALID_SAMPLE.read_bytes()
    a.poll("2026-11-27T08:00")
    a.core.start_session(a.clock.now())
    with a.store.claim_session(DAY):  # A is still at it
        b.core.run_session.run_pending(b.clock.wait)
    later = session(a, NEXT)
    assert later.state is SessionState.FAILED and "no records" in later.detail
    assert shipped_by(b, NEXT) == set()
    with a.store.unit_of_work() as uow:
        assert set(uow.invoices_with_status(NEXT, InvoiceStatus.ALREADY_EXPORTED)) == SHIPPED


def rebuild_over(world, other):
    """A second service process: its own outbound client and clock, the same database."""
    from warehouse_core.bootstrap import bootstrap

    world.core = bootstrap(
        other.core.settings,
        store=other.store,
        inbound=world.inbound,
        archive=world.archive,
        mailer=world.mailer,
        clock=other.clock,
        outbound=world.outbound,
        remote_log=world.remote_log,
        exports=world.exports,
    )
    world.store, world.clock = other.store, other.clock
    return world


# --- item 8: an earlier day retried is startable once; what was shipped stays downloadable -------


def test_a_retried_earlier_day_can_be_started_once_and_keeps_what_its_failed_run_shipped(running):
    running.importer_confirms(records=5)  # the consumer counted wrong: failed while watching
    running.work()
    assert session(running).delivery is Delivery.YES
    running.clock.set(at("2026-11-28T09:00"))  # two days later
    ready = retry(running, redeliver=True)
    assert ready.state is SessionState.READY and ready.export_file == EXPORT + ".run1"
    name, stream = export_download(running.store, running.exports, DAY)
    with stream:
        assert name == EXPORT + ".run1" and stream.read().count(b"\n") == 6
    with running.store.unit_of_work() as uow:
        assert [s.day for s in uow.days_needing_attention(NEXT + dt.timedelta(days=1), DAY)] == [DAY]
    started = running.core.start_session(running.clock.now(), actor="anna", day=DAY)
    assert started.state is SessionState.RUNNING and started.day == DAY
    with pytest.raises(Conflict) as caught:
        running.core.start_session(running.clock.now(), actor="anna", day=DAY)
    assert caught.value.code == "running"
    running.importer_confirms()
    running.work()
    assert session(running).state is SessionState.COMPLETED and session(running).delivery is Delivery.YES
    assert (DAY, EXPORT + ".run1") in running.exports.files  # the first run's file is still kept


def test_an_earlier_day_that_was_never_retried_cannot_be_started(world):
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.clock.set(at("2026-11-27T09:00"))
    with pytest.raises(Conflict) as caught:
        world.core.start_session(world.clock.now(), day=DAY)
    assert caught.value.code == "earlier_not_retried"
    assert "2026-11-26" in world.core.sentences.text(caught.value.code, **caught.value.values)
    assert session(world).state is SessionState.READY


def test_an_earlier_day_can_be_closed_by_the_same_rules_and_a_closed_unknown_day_settled_again(running):
    fails_in_renaming_without_an_answer(running)
    running.clock.set(at("2026-11-27T09:00"))
    closed = running.core.close_session(running.clock.now(), actor="ops", day=DAY)
    assert closed.state is SessionState.CLOSED and closed.delivery is Delivery.UNKNOWN  # still silent
    running.outbound.unreachable = False
    again = running.core.close_session.settle_now(running.clock.now(), "cli:ops", DAY, "the server is back")
    assert again.delivery is Delivery.YES and "delivered" in again.detail
    with pytest.raises(Conflict):
        running.core.close_session.settle_now(running.clock.now(), "cli:ops", DAY, "again")  # known now


def test_a_retried_day_keeps_no_local_file_of_a_run_that_never_shipped(running):
    running.outbound.fail_next = 3
    running.work()
    assert session(running).delivery is None
    assert retry(running).export_file is None and running.exports.files == {}


def test_a_retried_earlier_day_never_ships_what_a_later_day_shipped_meanwhile(running):
    """The invariant: every invoice is in at most one export whose delivery is yes or unknown. The
    26th failed before its rename (nothing held); the 27th shipped the same invoices; the 26th,
    retried and started after, must count them as exported: a hold of any other day, not only of
    an earlier one, makes an invoice already_exported."""
    running.outbound.fail_next = 3
    running.work()
    assert session(running).delivery is None and held(running) == set()
    next_day_started(running)
    running.work()
    assert session(running, NEXT).state is SessionState.COMPLETED and shipped_by(running, NEXT) == SHIPPED
    retry(running)
    running.core.start_session(running.clock.now(), actor="anna", day=DAY)
    running.work()
    again = session(running)
    assert again.state is SessionState.FAILED and "no records" in again.detail
    assert shipped_by(running, DAY) == set() and held(running) == set()


# --- the transitions one by one (mutation testing found these unguarded) ----------------------------


def test_the_group_of_days_that_need_someone_by_state():
    assert needs_someone("running", None, False) and needs_someone("failed", Delivery.YES, False)
    assert not needs_someone("completed", Delivery.YES, True) and not needs_someone("closed", Delivery.NO, False)


def test_the_rename_verdict_reads_the_two_files():
    from tests.fakes import FakeOutbound
    from warehouse_core.delivery_states import rename_verdict

    outbound = FakeOutbound()
    assert rename_verdict(outbound, EXPORT) is Delivery.YES  # the temporary file gone
    outbound.files[FakeOutbound.temporary(EXPORT)] = b"stored"
    assert rename_verdict(outbound, EXPORT) is Delivery.NO  # there, and no final file
    outbound.files[EXPORT] = b"an older file of the same name"
    # Both there (a redelivery's rename refused over the first delivery's file): set aside, so not
    # renamed; had it gone through, the temporary file would be gone (review 2, finding 1).
    assert rename_verdict(outbound, EXPORT) is Delivery.NO


def test_an_unknown_verdict_keeps_the_holds_and_yes_never_turns_no(running):
    from warehouse_core.delivery_states import begin_renaming, record_verdict

    with running.store.unit_of_work() as uow:
        uow.refresh_invoice_statuses(DAY)
        assert begin_renaming(uow, DAY, None) == ()
        assert record_verdict(uow, DAY, Delivery.UNKNOWN, Delivery.UNKNOWN) is Delivery.UNKNOWN
        assert uow.session(DAY).delivery is Delivery.UNKNOWN
    assert held(running) == SHIPPED
    with running.store.unit_of_work() as uow:
        assert record_verdict(uow, DAY, Delivery.UNKNOWN, Delivery.NO) is Delivery.NO  # never arrived: released
        assert uow.session(DAY).delivery is Delivery.NO
    assert held(running) == set()
    with running.store.unit_of_work() as uow:
        assert begin_renaming(uow, DAY, Delivery.NO) == ()  # a retried run's rename
        assert record_verdict(uow, DAY, Delivery.UNKNOWN, Delivery.YES) is Delivery.YES
        assert record_verdict(uow, DAY, Delivery.YES, Delivery.NO) is Delivery.YES  # yes never turns no
        assert begin_renaming(uow, DAY, Delivery.YES) == ()  # a redelivery's rename: unknown, for this run
        assert uow.session(DAY).delivery is Delivery.UNKNOWN
        assert record_verdict(uow, DAY, Delivery.UNKNOWN, Delivery.NO) is Delivery.YES  # the first delivery stands
        assert uow.session(DAY).delivery is Delivery.YES
    assert held(running) == SHIPPED


# --- An earlier run's files on the outbound server are never this run's evidence ---------------------


def test_a_set_aside_copy_an_earlier_run_left_is_removed_before_the_next_run_uploads_so_it_ships_once(running):
    """Ships twice: the 26th failed in phase renaming without an answer; the runner's settle set the
    temporary file aside (delivery no, invoices released), but the DELE of the set-aside file failed
    (the server dropped the connection): .Spedizioni20261126_6.txt.part.closed stays, logged only.
    Ops retry the day; the new run has the same lines, so the same export name. Its rename goes
    through, the reply is lost, and the consumer takes the file. The next try asks rename_verdict:
    temporary_present() counts the OLD set-aside file as this run's temporary file, the final file
    is gone, so the verdict would be "no": the holds released, the file uploaded and renamed again,
    the consumer getting the same invoices twice. So each try first removes what an earlier run
    left under the temporary and set-aside names (not removed: the try fails like a refused STOR)."""

    fails_before_the_rename_without_an_answer(running)
    assert session(running).delivery is Delivery.UNKNOWN
    running.outbound.unreachable = False
    discard = running.outbound.discard

    def the_connection_drops_once(name):
        running.outbound.discard = discard
        raise TransferError("DELE {}: connection reset".format(name))

    running.outbound.discard = the_connection_drops_once
    running.work()  # the runner settles: set aside, delivery no; the set-aside file stays
    assert session(running).delivery is Delivery.NO
    assert running.outbound.set_aside("Spedizioni20261126_6.txt") in running.outbound.files
    retry(running)
    running.core.start_session(running.clock.now())
    delivered = []

    def the_consumer_takes_the_file(name, data):
        delivered.append(name)
        running.outbound.files.pop(name)

    running.outbound.on_upload = the_consumer_takes_the_file
    running.outbound.lose_rename_reply_next = 1
    running.work()
    assert delivered == ["Spedizioni20261126_6.txt"]  # fails: renamed into place twice


def test_a_redelivery_killed_while_uploading_is_uploaded_and_renamed_again_when_resumed(running):
    """Redelivery silently skipped: the first run delivered and the consumer counted wrong (failed
    while watching, delivery yes). Ops retry with --redeliver; the second run (same lines, so the
    same name and size) is killed while uploading, its temporary file stored. The resumed worker is
    in phase uploading, finds the FIRST run's final file of that name and size (Upload.already_delivered
    -> in_place), takes it as its own delivery without renaming anything, and reads the remote log
    from the start (no positions are stored before phase renaming): the first run's line fails it
    again: the consumer would never get the redelivery ops asked for. In phase uploading a run has
    not asked for its rename, so only a run from before the ledger (delivery None) trusts that file."""
    running.importer_confirms(records=5)
    running.work()
    assert session(running).delivery is Delivery.YES
    retry(running, redeliver=True)
    running.core.start_session(running.clock.now())
    redelivered = []
    running.outbound.on_upload = lambda name, data: redelivered.append(name)

    def killed(name):
        raise WorkerKilled("killed while uploading")

    running.outbound.on_stored = killed
    with pytest.raises(WorkerKilled):
        running.work()
    running.outbound.on_stored = None
    assert session(running).phase is SessionPhase.UPLOADING
    running.work()
    assert redelivered == ["Spedizioni20261126_6.txt"]  # fails: [] (never renamed into place again)


# --- A redelivery's rename is tracked for that run: its extra invoices held until proof, Close fences it


# In the day's file, but not (yet) in the customer's view at the first run.
LATE_INVOICE = "600000004"


def the_late_invoice_appears_in_the_view(world):
    world.store.invoice_view[LATE_INVOICE] = {
        "invoice_number": LATE_INVOICE,
        "invoice_date": dt.date(2026, 11, 26),
        "customer_code": "C009",
        "customer_name": "Late Srl",
        "delivery_address": "Via Nuova 4, Roma",
    }


def test_a_redelivery_that_never_arrived_releases_what_only_it_held_and_keeps_what_the_first_run_shipped(running):
    """Lost: the first run delivered 6 invoices (yes) and failed while watching; 600000004 was not
    in the view then. Retried with --redeliver, the second run exports 7 lines; its renames are
    refused and the server proves each time that the file never arrived (temporary file there,
    final one absent). The day fails again, its delivery yes (the first run's stands), and only what
    the redelivery alone held is released: 600000004 never reached the consumer, so a later day may
    export it; the six the first run shipped stay held for good."""
    running.importer_confirms(records=5)  # the consumer counted wrong: failed while watching
    running.work()
    assert session(running).delivery is Delivery.YES and held(running) == SHIPPED
    the_late_invoice_appears_in_the_view(running)
    retry(running, redeliver=True)
    running.core.start_session(running.clock.now())
    running.outbound.on_upload = None
    running.outbound.refuse_rename_next = 3  # every rename refused: the file stays temporary
    running.work()
    again = session(running)
    assert again.state is SessionState.FAILED
    assert not any(name.startswith("Spedizioni20261126_7") for name in running.outbound.files)  # never arrived
    assert again.delivery is Delivery.YES and held(running) == SHIPPED  # 600000004 released, the six kept


def test_a_close_between_a_redeliverys_check_and_its_rename_sets_its_file_aside(running):
    """Ships after Close: a redelivery run (the day's delivery yes) commits phase renaming; the
    operator presses Close right then. The redelivery's rename is in flight like any run's (its
    delivery unknown until proof), so Close fences it: the temporary file is set aside, the worker's
    rename cannot follow, and the closed day's detail says the consumer has only the earlier
    delivery, whose invoices stay held (SPEC §5: closed before the rename, the upload stops)."""
    running.importer_confirms(records=5)
    running.work()
    retry(running, redeliver=True)
    running.core.start_session(running.clock.now())
    renamed = []
    running.outbound.on_upload = lambda name, data: renamed.append(name)
    closed = []

    def close_now(name):
        running.outbound.on_renaming = None
        closed.append(running.core.close_session(running.clock.now(), actor="anna"))

    running.outbound.on_renaming = close_now
    running.work()
    assert closed and session(running).state is SessionState.CLOSED
    assert renamed == []  # the redelivery never renamed into place after the Close
    assert running.outbound.temporary(EXPORT) not in running.outbound.files
    closed_day = session(running)
    assert closed_day.delivery is Delivery.YES and held(running) == SHIPPED  # the first delivery stands
    assert "redelivery" in (closed_day.detail or "") and "delivered earlier" in (closed_day.detail or "")


# --- A later day waits for an earlier day's own worker, never fails for it ------------------------------


def test_a_later_day_waits_naming_an_earlier_day_whose_own_worker_is_mid_rename_in_another_process(make_world):
    """Stuck/misleading: process A holds the 26th's claim, its worker between the committed phase
    renaming and the rename's reply (a slow server). Process B works the 27th: settle() never asks
    the server about a running day, so the 27th 'waits' 2 s + 4 s and then fails with "the outbound
    FTP server did not say within 3 tries" although the server was never asked and answers fine.
    The 27th would need ops (session retry) for an outbound failure that never was. So while an
    earlier unknown day is running (its own worker asks the server) the later day's worker leaves
    it running, its detail naming that day, the try given back, and comes back at the next round;
    once the earlier day is settled, the later day goes on."""
    a = make_world()
    b = rebuild_over(make_world(), a)
    a.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    a.poll("2026-11-26T10:00")
    a.core.start_session(a.clock.now())

    def killed(name):
        raise WorkerKilled("A's worker is stuck in the rename")

    a.outbound.on_renaming = killed
    with pytest.raises(WorkerKilled):
        a.core.run_session.run_pending(a.clock.wait)
    earlier = session(a)
    assert (earlier.state, earlier.phase, earlier.delivery) == (
        SessionState.RUNNING,
        SessionPhase.RENAMING,
        Delivery.UNKNOWN,
    )
    a.inbound.files[NEXT_FILE] = VALID_SAMPLE.read_bytes()
    a.poll("2026-11-27T08:00")
    a.core.start_session(a.clock.now())
    with a.store.claim_session(DAY):  # A is still at it, alive
        b.core.run_session.run_pending(b.clock.wait)
    later = session(a, NEXT)
    assert later.state is SessionState.RUNNING and "2026-11-26" in (later.detail or "")
    assert later.tries == 0  # given back: waiting is not a failed try
    for _ in range(4):  # A still at it: as many rounds as it takes, never failed
        with a.store.claim_session(DAY):
            b.core.run_session.run_pending(b.clock.wait)
    assert session(a, NEXT).state is SessionState.RUNNING
    a.outbound.on_renaming = None
    b.core.run_session.run_pending(b.clock.wait)  # A is gone: the 26th is worked, then the 27th
    assert session(a).delivery is Delivery.YES and session(a, NEXT).export_file is not None


# --- No question to the outbound server while a session's row is locked -------------------------------


def test_a_retry_asks_the_server_about_a_run_from_before_the_ledger_without_holding_the_days_row(running):
    """A run from before the ledger (no delivery recorded) failed while uploading, its file in
    place: the retry asks the server (SIZE) whether it went through, and records yes. That question
    waits for the server's timeout when it is slow: asked before the row is locked, never with it."""
    import threading

    running.outbound.fail_next = 3
    running.work()
    assert (session(running).state, session(running).phase, session(running).delivery) == (
        SessionState.FAILED,
        SessionPhase.UPLOADING,
        None,
    )
    running.outbound.files[EXPORT] = b"renamed by a version before the ledger\n"
    asked_while_locked = []
    size = running.outbound.size

    def size_noting_the_lock(name):
        free = []

        def probe_the_lock():  # another thread: does a unit of work of this one hold the store?
            got = running.store.transaction_lock.acquire(blocking=False)
            if got:
                running.store.transaction_lock.release()
            free.append(got)

        probe = threading.Thread(target=probe_the_lock)
        probe.start()
        probe.join()
        asked_while_locked.append(not free[0])
        return size(name)

    running.outbound.size = size_noting_the_lock
    with pytest.raises(Conflict) as refused:
        retry(running)
    assert refused.value.code == "retry_delivered" and session(running).delivery is Delivery.YES
    assert asked_while_locked == [False]


# --- review B, finding 5: a redelivery is confirmed only by a line written after its own rename ----


def test_a_redelivery_is_never_renamed_while_the_log_cannot_say_where_it_ends(running):
    """The first run is delivered but the consumer is slow: the watch times out (failed, delivery
    yes) and its line comes later. Ops retry --redeliver. While the second run uploads, the log
    server does not answer, so where the log ends before the rename is not known; it answers again
    right after. Renamed then, the watch would read the log from its start and take the first
    upload's line for this one's (SPEC §5: a watch accepts only lines written after its own upload).
    A redelivery's rename waits for the log: that try fails like a refused upload, the next one
    notes where the log ends, and only a line after it confirms the redelivery."""
    running.work()
    first = session(running)
    assert first.state is SessionState.FAILED and first.delivery is Delivery.YES
    running.remote_log.append("importer-20261126.log", "{}: 6 records read".format(EXPORT))  # late
    retry(running, redeliver=True)
    running.core.start_session(running.clock.now())
    running.remote_log.unreadable = True
    stored, renamed = [], []

    def log_answers_from_the_second_try_on(name):
        stored.append(name)
        running.remote_log.unreadable = len(stored) == 1

    running.outbound.attempts = 0
    running.outbound.on_stored = log_answers_from_the_second_try_on
    running.outbound.on_upload = lambda name, data: renamed.append(name)
    running.work()
    redelivered = session(running)
    assert renamed == [EXPORT], "renamed once, after the log said where it ends"
    assert redelivered.log_positions, "the rename noted where the logs end"
    assert redelivered.state is SessionState.FAILED, "confirmed by the first upload's line: {}".format(
        redelivered.state
    )
    assert "no confirmation" in (redelivered.detail or "")


# --- review 2a, finding 1: a redelivery's rename refused over the first delivery's file -----------


def test_a_redelivery_whose_refused_rename_was_set_aside_and_whose_next_uploads_failed_keeps_nothing_it_never_shipped(
    running,
):
    """Lost: the first run delivered Spedizioni20261126_6.txt (six invoices, delivery yes) and failed
    while watching; the consumer leaves the file there. Ops retry with --redeliver; meanwhile
    600000004 entered the view and 600000001 left it, so the redelivery again has 6 lines: same
    name. Its rename over the existing file is refused (a server that refuses to overwrite).
    The next try's rename_verdict finds the temporary file there AND the final one there: it fences
    (sets the temporary file aside) and says UNKNOWN; the phase goes back to uploading with delivery
    unknown. The next try first discards "an earlier run's leftovers" - the set-aside copy that was
    the only proof - and its STORs are refused; the day fails in phase uploading, delivery unknown.
    The next round settles it: fence() finds nothing to set aside and concludes YES, so
    record_exported marks 600000004 delivered for good: it never reached the consumer (the file in
    place is the first run's, without it) and is never valid again on a later day."""
    running.importer_confirms(records=5)  # the consumer counted wrong: failed while watching
    running.work()
    assert session(running).delivery is Delivery.YES and held(running) == SHIPPED
    first_file = running.outbound.files[EXPORT]
    running.store.invoice_view["600000004"] = {
        "invoice_number": "600000004",
        "invoice_date": dt.date(2026, 11, 26),
        "customer_code": "C009",
        "customer_name": "Late Srl",
        "delivery_address": "Via Nuova 4, Roma",
    }
    del running.store.invoice_view["600000001"]
    retry(running, redeliver=True)
    running.core.start_session(running.clock.now())
    running.outbound.on_upload = None

    def then_the_stores_fail(name):
        running.outbound.on_renaming = None
        running.outbound.fail_next = 2  # the next two tries' STOR are refused

    running.outbound.on_renaming = then_the_stores_fail
    running.outbound.refuse_rename_next = 1  # the rename over the first delivery's file is refused
    running.work()
    failed = session(running)
    assert failed.state is SessionState.FAILED and failed.export_file == EXPORT
    assert running.outbound.files[EXPORT] == first_file  # the consumer has only the first delivery
    assert "600000004".encode() not in running.outbound.files[EXPORT]
    running.work()  # the next round settles the day's unknown delivery
    settled = session(running)
    assert settled.delivery is Delivery.YES  # the first delivery stands
    assert "600000004" not in held(running)  # fails now: held as delivered, though it never shipped


# --- review 2, finding 4: a retried day stays within reach until it is started or closed ----------


def test_a_day_retried_on_the_last_day_the_page_reaches_stays_startable_after_midnight(running):
    """The 26th failed at the upload (nothing delivered). On 26 December, the last day the page
    lists it, ops retry it: accepted, and mailed "Start on the page exports it". The next morning
    it was in no earlier list and its Start was refused as "not retried" (it was): ready for ever,
    its invoices never exported. A retried day is ops' explicit request: it stays listed and
    startable, whatever its date, until it is started or closed."""
    running.outbound.fail_next = 3
    running.work()
    assert session(running).state is SessionState.FAILED
    running.clock.set(at("2026-12-26T18:00"))
    assert retry(running).state is SessionState.READY
    running.clock.set(at("2026-12-27T08:30"))
    assert [s.day for s in running.core.status(running.clock.now().date()).earlier] == [DAY]
    running.importer_confirms()
    assert running.core.start_session(running.clock.now(), day=DAY).state is SessionState.RUNNING
    running.work()
    assert session(running).state is SessionState.COMPLETED
    assert running.core.status(running.clock.now().date()).earlier == []


# --- Review 2b and 2a: what the operator is told ----------------------------------------------------


def test_the_alert_of_a_day_failed_for_an_earlier_days_silence_does_not_tell_the_operator_to_close_it(running):
    """The 26th failed in phase renaming and the outbound server stays silent. On the 27th the
    operator presses Start: the 27th waits 2 s + 4 s and fails "the outbound FTP server did not say
    within 3 tries whether the export of 2026-11-26 reached the consumer: nothing was exported". Its
    alert ends "The session can only be closed now; nothing more is exported for this day", and the
    page refuses Start with "it can only be closed". Nothing of the 27th was exported; ops can
    retry it once the server answers (session retry). An operator who does what the mail says closes
    it, and then no retry is possible (closed is final): the 27th's invoices are never exported."""
    fails_in_renaming_without_an_answer(running)
    running.outbound.on_upload = None
    assert session(running).state is SessionState.FAILED and session(running).delivery is Delivery.UNKNOWN
    next_day_started(running, confirm=False)
    running.work()
    assert session(running, NEXT).state is SessionState.FAILED
    [alert] = [mail for mail in running.store.mails("session-failed") if mail.day == NEXT]
    assert "did not say" in alert.text
    assert "can only be closed" not in alert.text, alert.text
    assert "retry" in alert.text  # ops can retry it once the earlier day is settled
    assert "can only be closed" not in alert.html and "retry" in alert.html


def test_closing_a_day_that_failed_not_knowing_keeps_why_it_failed(running):
    """The 26th failed in phase renaming at 10:00 (delivery unknown); the operator closes it hours
    later. CloseSession._close overwrites the failure's reason with SETTLING_AT_CLOSE, "closed by an
    operator while ... was being renamed into place", and the settle then with "closed by an
    operator after ... was delivered" (or "before ... was renamed"): the detail now says the Close
    interrupted a rename it did not interrupt, and why the day failed is gone from the session (a
    day failed while watching keeps its reason: "a failed day's reason stays its detail")."""
    fails_in_renaming_without_an_answer(running)
    running.outbound.on_upload = None
    assert session(running).state is SessionState.FAILED and session(running).delivery is Delivery.UNKNOWN
    reason = session(running).detail
    running.clock.set(at("2026-11-26T16:00"))
    running.core.close_session(running.clock.now(), actor="anna")
    detail = session(running).detail or ""
    assert "being renamed" not in detail, detail  # a Close of a failed day told as mid-rename
    assert reason in detail  # the failure's reason is kept
    # Once the server answers, the settle records the verdict and still keeps the reason.
    running.outbound.unreachable = False
    running.work()
    assert session(running).delivery is Delivery.YES
    detail = session(running).detail or ""
    assert reason in detail and "had been delivered" in detail, detail


def test_the_advice_of_an_out_of_reach_retry_ships_the_invoices_of_a_day_whose_file_had_been_delivered(running):
    """Lost on the advice: the 26th's file was delivered, but the consumer counted wrong (failed
    while watching, delivery yes: its six invoices held as delivered for good). Forty days later
    the consumer says it never loaded them; ops run `session retry --day 2026-11-26 --redeliver`.
    Refused, saying: "To ship its invoices, have them sent again in a current day's file." The
    warehouse sends them again in the day's file of 5 January: the export leaves every one of them
    out (already exported, held by the 26th), so the advice cannot work for a delivered day, and
    nothing says so. The sentence must not promise what the ledger forbids (or the way must exist).

    (Reworded from review 2a's test, which asserted that the advice stays and works: the ledger's
    rule that a delivered invoice is never exported again stands, so the refusal of a delivered day
    now says that, and where the file as delivered is; following the old advice still ships none.)"""
    running.importer_confirms(records=5)  # the consumer counted wrong: failed while watching
    running.work()
    assert session(running).delivery is Delivery.YES and held(running) == SHIPPED
    running.clock.set(at("2027-01-05T08:00"))
    with pytest.raises(Conflict) as caught:
        retry(running, redeliver=True)
    sentence = running.core.sentences.text(caught.value.code, **caught.value.values)
    assert "have them sent again in a current day's file" not in sentence, sentence
    assert "no later day exports them" in sentence and "/days/2026-11-26/export" in sentence, sentence
    # What the sentence says: sent again in a current day's file, none of them is exported.
    running.inbound.files["Letture20270105080000000_9.txt"] = VALID_SAMPLE.read_bytes()
    running.poll("2027-01-05T08:00")
    day = dt.date(2027, 1, 5)
    running.core.start_session(running.clock.now())
    running.work()
    assert SHIPPED.isdisjoint(shipped_by(running, day)), session(running, day)


def test_the_advice_of_an_out_of_reach_retry_of_a_day_that_exported_nothing_ships_its_invoices(running):
    """A day whose upload failed (nothing reached the consumer, nothing held) is out of reach after
    30 days: the refusal advises sending its invoices again in a current day's file, and that works."""
    running.outbound.unreachable = True
    running.work()
    assert session(running).state is SessionState.FAILED and held(running) == set()
    running.outbound.unreachable = False
    running.clock.set(at("2027-01-05T08:00"))
    with pytest.raises(Conflict) as caught:
        retry(running)
    sentence = running.core.sentences.text(caught.value.code, **caught.value.values)
    assert "have them sent again in a current day's file" in sentence, sentence
    running.inbound.files["Letture20270105080000000_9.txt"] = VALID_SAMPLE.read_bytes()
    running.poll("2027-01-05T08:00")
    day = dt.date(2027, 1, 5)
    running.outbound.on_upload = lambda name, data: running.remote_log.append(
        "importer-20270105.log", "{}: {} records read".format(name, data.count(b"\n"))
    )
    running.core.start_session(running.clock.now())
    running.work()
    assert SHIPPED <= shipped_by(running, day), session(running, day)


def test_the_advice_of_an_out_of_reach_retry_of_a_day_whose_delivery_is_unknown_waits_for_the_server(running):
    """A day failed in phase renaming, the server silent since: its invoices are held until the
    runner learns whether its file arrived. The refusal says so, instead of promising that a current
    day's file ships them now."""
    fails_in_renaming_without_an_answer(running)
    assert session(running).delivery is Delivery.UNKNOWN
    running.clock.set(at("2027-01-05T08:00"))
    with pytest.raises(Conflict) as caught:
        retry(running)
    sentence = running.core.sentences.text(caught.value.code, **caught.value.values)
    assert "not known yet" in sentence and "have them sent again in a current day's file" not in sentence, sentence


# --- What the operator reads once the worker moved on, and once a day is settled (review 2) ---------


def client_of(world):
    from warehouse_web import create_app

    return create_app({"TESTING": True}, core=world.core).test_client()


def events(world, day=DAY):
    with world.store.unit_of_work() as uow:
        return uow.events_of_day(day)


def failed_in_renaming_not_knowing(world):
    """fails_in_renaming_without_an_answer, the server then silent: failed, delivery unknown."""
    fails_in_renaming_without_an_answer(world)
    world.outbound.on_upload = None
    assert session(world).state is SessionState.FAILED and session(world).delivery is Delivery.UNKNOWN


def test_the_waiting_detail_goes_once_the_earlier_day_is_settled(running):
    """The 27th's Start finds the 26th's delivery unknown and the server silent: its detail becomes
    "waiting for the outbound server to say whether the export of 2026-11-26 reached the consumer".
    The server answers at the next look, the 26th is settled, the 27th exports, uploads and watches:
    update_session never clears a detail (None means "unchanged"), so the status line keeps saying
    "- in attesa ... 2026-11-26" / "- waiting for ... 2026-11-26" through the whole run, while the
    timeline shows the export written and uploaded. The same holds for "try 1 of 4 failed, retried
    in 10 s: ..." after a try that then succeeded; and should the 27th's worker then stop 4 times,
    its failure reads "last error: waiting for the outbound server ..."."""
    world = running
    failed_in_renaming_not_knowing(world)
    later = VALID_SAMPLE.read_bytes().replace(b"60000000", b"60000010")
    for number in {line.split(b"|")[0].decode() for line in later.splitlines()}:
        world.store.invoice_view[number] = dict(world.store.invoice_view["600000001"], invoice_number=number)
    world.inbound.files[NEXT_FILE] = later
    world.poll("2026-11-27T08:00")
    world.core.start_session(world.clock.now())
    seen = []

    def the_server_answers_again(seconds):
        world.outbound.unreachable = False
        return world.clock.wait(seconds)

    def status_at_the_rename(name, data):
        if "20261127" in name:
            seen.append(client_of(world).get("/api/session").get_json()["message"])

    world.outbound.on_upload = status_at_the_rename
    world.core.run_session.run_pending(the_server_answers_again)
    assert session(world).delivery is not Delivery.UNKNOWN  # the 26th settled
    assert seen, "the 27th was uploaded"
    assert "waiting" not in seen[0], seen[0]  # fails: the detail of the wait is still on the status line


def test_the_day_page_says_when_the_service_learnt_whether_a_failed_days_file_reached_the_consumer(running):
    """The 26th failed in phase renaming, not knowing (the alert says "the service keeps asking the
    outbound server and settles the day on its own"). Once the server answers, the runner records
    delivery yes and holds the invoices for good: but settle() writes no event, sends no mail. The
    day page still says only "Session failed: the upload to the outbound FTP server failed after 3
    tries", its timeline has no line that the file reached the consumer, and the earlier list now
    says "Failed, and an alert was mailed: the upload ... failed". Operators and ops read "nothing
    went out" for a day whose invoices the service now counts as exported (already_exported on
    every later day), with no word of when or why."""
    world = running
    failed_in_renaming_not_knowing(world)
    before = events(world)
    world.outbound.unreachable = False
    world.work()  # the runner settles: the temporary file is gone, the rename went through
    assert session(world).delivery is Delivery.YES
    assert len(events(world)) > len(before)  # fails: nothing in the timeline says what was learnt


def test_when_a_failed_days_unknown_delivery_is_settled_never_delivered_someone_is_told(running):
    """The 26th's rename is refused and the server goes silent: failed, delivery unknown. The alert
    says: "... the service keeps asking the outbound server and settles the day on its own. Nothing
    more is exported for this day. You may close it ..., or do nothing." An hour later the runner
    learns the file never arrived (delivery no): the six invoices are released, but they are
    exported again only if a later day's file carries them, or if ops retry the 26th. Nobody is
    told: no mail follows the settle, and the operator was told to do nothing (review B finding 6,
    second half, still open). The invoices of the 26th are never exported."""
    fails_before_the_rename_without_an_answer(running)
    failed = session(running)
    assert failed.state is SessionState.FAILED and failed.delivery is Delivery.UNKNOWN
    [alert] = running.store.mails("session-failed")
    assert "do nothing" in alert.text
    mails_before = len(running.store.data.outbox)
    running.outbound.unreachable = False
    running.clock.set(at("2026-11-26T11:00"))
    running.work()  # the runner's round settles it
    assert session(running).delivery is Delivery.NO and held(running) == set()
    assert len(running.store.data.outbox) > mails_before, "nobody is told the 26th's file never arrived"


def test_a_failed_day_settled_never_delivered_is_mailed_once_and_a_delivered_or_closed_one_is_not(make_world):
    """The mail of a failed day whose file never arrived says what was learnt and that only a retry
    exports its invoices, in the operator's language; a day whose file did arrive needs nobody (its
    timeline says so), nor does a closed one (closed is final): no mail. It is a second
    ``session-failed`` mail of the day (SPEC §6: every mail's X-Warehouse-Event is one of the seven
    events), saying what is new."""
    world = make_world(language="it")
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    fails_before_the_rename_without_an_answer(world)
    world.outbound.unreachable = False
    world.work()
    world.work()  # settled already: nothing more
    first, mail = world.store.mails("session-failed")
    assert "non è mai arrivato al destinatario" not in first.subject
    assert mail.day == DAY and "non è mai arrivato al destinatario" in mail.subject
    assert "session retry --day 2026-11-26" in mail.text and EXPORT in mail.text
    assert "session retry --day 2026-11-26" in mail.html

    delivered = make_world()
    delivered.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    delivered.poll("2026-11-26T10:00")
    delivered.core.start_session(delivered.clock.now())
    failed_in_renaming_not_knowing(delivered)
    delivered.outbound.unreachable = False
    delivered.work()
    assert session(delivered).delivery is Delivery.YES and len(delivered.store.mails("session-failed")) == 1

    closed = make_world()
    closed.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    closed.poll("2026-11-26T10:00")
    closed.core.start_session(closed.clock.now())
    fails_before_the_rename_without_an_answer(closed)
    closed.core.close_session(closed.clock.now(), actor="anna")  # the server still silent
    closed.outbound.unreachable = False
    closed.work()
    assert session(closed).delivery is Delivery.NO and len(closed.store.mails("session-failed")) == 1
    assert [e.detail for e in events(closed) if e.kind.value == "delivery-settled"] == [
        {"file": EXPORT, "verdict": "no", "delivery": "no"}
    ]


# --- review 3a, finding 1: days worked side by side never both export an invoice they share ------


def test_a_later_day_counts_its_invoices_only_once_an_earlier_running_day_has_put_its_file_in_place(world):
    """Each day is worked in a thread of its own. The 26th failed at its upload; on the 27th ops
    retry it and the operator starts it, then the 27th, whose file carries 600000001 again. Had the
    27th counted its invoices while the 26th was still on its way to its rename, both exports would
    carry 600000001 and the second to rename would fail ("held by another day's export"): today's
    session failed for an earlier day's retry. The 27th's worker, first to run, waits (its detail
    naming the 26th) until the 26th is past its rename; then it exports without 600000001. The
    26th's watch, after its rename, never holds the 27th up."""
    world.inbound.files["Letture20261126083015123_9.txt"] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    world.outbound.fail_next = 3
    world.work()
    assert session(world).state is SessionState.FAILED
    world.store.invoice_view["600000010"] = dict(world.store.invoice_view["600000001"], invoice_number="600000010")
    world.inbound.files["Letture20261127080000000_1.txt"] = b"600000001|1|Pane|1.00\n600000010|2|Pane|2.00\n"
    world.poll("2026-11-27T09:00")
    retry(world)
    world.core.start_session(world.clock.now(), day=DAY)
    world.core.start_session(world.clock.now())
    world.outbound.on_upload = lambda name, data: world.remote_log.append(
        "importer-{}.log".format(name[len("Spedizioni") : len("Spedizioni") + 8]),
        "{}: {} records read".format(name, data.count(b"\n")),
    )
    worker = world.core.run_session
    with world.store.claim_session(DAY) as claimed:  # the 26th's thread is exporting right now
        assert claimed
        assert worker.work_day(NEXT, world.clock.wait)  # today's thread runs meanwhile
    waiting = session(world, NEXT)
    assert waiting.state is SessionState.RUNNING and waiting.export_file is None
    assert "2026-11-26" in (waiting.detail or "")
    assert worker.work_day(DAY, world.clock.wait)
    assert session(world).state is SessionState.COMPLETED
    assert worker.work_day(NEXT, world.clock.wait)
    today = session(world, NEXT)
    assert today.state is SessionState.COMPLETED, today.detail
    assert today.detail is None, "the wait's note went once the wait was over"
    assert shipped_by(world, NEXT) == {"600000010"}
    assert "600000001" in shipped_by(world, DAY)


# What the operator and ops are told of a failed day, walked through on the fakes (review 3b).


CAN_ONLY_BE_CLOSED = {"en": "it can only be closed", "it": "ora può solo essere chiusa"}


def started(make_world, language):
    world = make_world(language=language)
    world.inbound.files[VALID_SAMPLE.name] = VALID_SAMPLE.read_bytes()
    world.poll("2026-11-26T10:00")
    world.core.start_session(world.clock.now())
    return world


def readable(html):
    html = re.sub(r"<script.*?</script>|<style.*?</style>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


def page(world, path="/"):
    return create_app({"TESTING": True}, core=world.core).test_client().get(path).get_data(as_text=True)


def earlier_why(world, day):
    html = page(world)
    match = re.search(r'<p class="earlier-why" id="earlier-why-{}">(.*?)</p>'.format(day), html, re.S)
    assert match is not None, readable(html)
    return readable(match.group(1))


def closed_after_failing_then_settled_days_later(world):
    """The 26th fails at its rename (10:00), the server silent; Anna closes it at 16:00; the
    server answers again on the 29th and the runner settles it: the file had been delivered."""
    fails_in_renaming_without_an_answer(world)
    world.outbound.on_upload = None
    world.clock.set(at("2026-11-26T16:00"))
    world.core.close_session(world.clock.now(), actor="anna")
    assert session(world).state is SessionState.CLOSED and session(world).delivery is Delivery.UNKNOWN


def test_the_alert_of_a_failed_redelivery_does_not_say_its_invoices_are_held_only_until_it_is_known(make_world):
    """LOW (a state told wrongly). The 26th was delivered (the consumer counted wrong: failed while
    watching, delivery yes). Ops retry it with --redeliver on the 27th; the redelivery's rename
    reply is lost and the server falls silent. The alert says "Spedizioni... may have reached the
    consumer ... Until it is [known], its invoices are held": the first delivery reached the
    consumer for certain, and its invoices stay exported whatever the redelivery's verdict (the
    settle keeps yes); "until" promises a release that never comes."""
    from tests.unit.test_delivery_ledger import SHIPPED, held, retry

    world = started(make_world, "en")
    world.importer_confirms(records=5)
    world.work()
    assert session(world).delivery is Delivery.YES
    world.clock.set(at("2026-11-27T09:00"))
    retry(world, redeliver=True)
    world.core.start_session(world.clock.now(), day=DAY)
    fails_in_renaming_without_an_answer(world)
    world.outbound.on_upload = None
    assert session(world).state is SessionState.FAILED and session(world).delivery is Delivery.UNKNOWN
    alert = [mail for mail in world.store.mails("session-failed") if mail.day == DAY][-1]
    world.outbound.unreachable = False
    world.work()
    assert session(world).delivery is Delivery.YES and held(world) == SHIPPED  # held for good, as before
    assert "Until it is, its invoices are held" not in alert.text, alert.text


def test_the_alert_of_a_day_held_out_by_another_days_rename_does_not_say_it_can_only_be_closed(make_world):
    """LOW (a mail that contradicts itself). Two workers: the 26th's export is written, then another
    day's export holding some of the same invoices is renamed into place first; the 26th is not
    renamed and fails with HELD_ELSEWHERE, "... not renamed; ops can retry the day to export it
    without them". Its alert then ends, from the template's last branch, "The session can only be
    closed now; nothing more is exported for this day": the reason says ops can retry it, the next
    line says it can only be closed (and closing ends it without an export)."""
    world = started(make_world, "en")
    other = DAY.replace(day=20)

    def another_day_renamed_first(name):
        world.outbound.on_stored = None
        world.store.data.exported.add(("600000001", other))

    world.outbound.on_stored = another_day_renamed_first
    world.work()
    failed = session(world)
    assert failed.state is SessionState.FAILED and "held by another day" in (failed.detail or ""), failed
    [alert] = world.store.mails("session-failed")
    assert "ops can retry the day" in alert.text
    assert "can only be closed" not in alert.text, alert.text
