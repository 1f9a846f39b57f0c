"""§7: after 5 failed logins (form or HTTP Basic) from one address within 5 minutes, that address
gets 429 for 5 minutes, and a right password does not end the lock early. Time is the fake clock's."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from werkzeug.security import generate_password_hash

from warehouse_core.bootstrap import bootstrap
from warehouse_web import create_app

RIGHT, WRONG = "correct horse", "battery staple"


@pytest.fixture
def app(world, make_settings):
    core = bootstrap(
        make_settings(operators="anna:" + generate_password_hash(RIGHT, method="pbkdf2:sha256:1000")),
        store=world.store,
        inbound=world.inbound,
        archive=world.archive,
        mailer=world.mailer,
        clock=world.clock,
        outbound=world.outbound,
        remote_log=world.remote_log,
        exports=world.exports,
    )
    return create_app({"TESTING": True}, core=core)


def client_at(app, address):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def form_login(client, password):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"username": "anna", "password": password, "csrf_token": token})


def basic(client, password, user="anna"):
    value = base64.b64encode("{}:{}".format(user, password).encode()).decode()
    return client.get("/api/session", headers={"Authorization": "Basic " + value})


def later(world, **delta):
    world.clock.set(world.clock.now() + dt.timedelta(**delta))


def test_five_failed_form_logins_lock_the_address_for_five_minutes(app, world):
    client = client_at(app, "192.0.2.10")
    for _ in range(5):
        assert form_login(client, WRONG).status_code == 401
        later(world, seconds=30)
    locked = form_login(client, RIGHT)
    assert locked.status_code == 429 and "Too many failed logins" in locked.get_data(as_text=True)
    assert int(locked.headers["Retry-After"]) == 5 * 60 - 30
    later(world, minutes=4, seconds=29)  # one second before the end: still locked, right password or not
    assert form_login(client, RIGHT).status_code == 429
    later(world, seconds=1)
    assert form_login(client, RIGHT).status_code == 302


def test_failures_spread_over_more_than_five_minutes_do_not_lock(app, world):
    client = client_at(app, "192.0.2.11")
    for _ in range(4):
        assert form_login(client, WRONG).status_code == 401
    later(world, minutes=5)
    assert form_login(client, WRONG).status_code == 401  # the first four are out of the window
    assert form_login(client, RIGHT).status_code == 302


def test_http_basic_counts_and_is_refused_the_same_way(app, world):
    client = client_at(app, "192.0.2.12")
    for _ in range(3):
        assert basic(client, WRONG).status_code == 401
    assert form_login(client, WRONG).status_code == 401
    assert basic(client, WRONG, user="nobody").status_code == 401  # unknown users count too
    locked = basic(client, RIGHT)
    assert locked.status_code == 429 and "Too many failed logins" in locked.get_json()["error"]
    assert "Retry-After" in locked.headers
    later(world, minutes=5)
    assert basic(client, RIGHT).status_code == 200


def test_a_locked_address_does_not_lock_another(app, world):
    attacker, operator = client_at(app, "192.0.2.13"), client_at(app, "192.0.2.14")
    for _ in range(5):
        basic(attacker, WRONG)
    assert basic(attacker, RIGHT).status_code == 429
    assert basic(operator, RIGHT).status_code == 200
    assert form_login(operator, RIGHT).status_code == 302


def test_a_right_password_before_the_lock_does_not_forget_the_failures(app, world):
    client = client_at(app, "192.0.2.15")
    for _ in range(4):
        basic(client, WRONG)
    assert basic(client, RIGHT).status_code == 200
    assert basic(client, WRONG).status_code == 401
    assert basic(client, RIGHT).status_code == 429


def test_an_ipv6_client_cannot_dodge_the_lock_by_changing_its_address_inside_its_slash_64(app, world):
    # Every IPv6 client holds a whole /64: a new address per try would never reach five.
    for last in range(1, 6):
        assert basic(client_at(app, "2001:db8:1:2::{}".format(last)), WRONG).status_code == 401
    assert basic(client_at(app, "2001:db8:1:2:ffff::9"), RIGHT).status_code == 429
    assert basic(client_at(app, "2001:db8:1:3::1"), RIGHT).status_code == 200  # another network
