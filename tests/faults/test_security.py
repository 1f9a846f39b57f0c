"""Security: secrets never printed, cookies, headers, no debugger, parameterised SQL only."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import MALFORMED_SAMPLE, VALID_SAMPLE
from warehouse_devstack.servers import free_port, wait_for_port

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.fault("secrets in output", "passwords in every URL and an operator password")
def test_configured_passwords_never_appear_in_any_output(service, ftp_server, outcome):
    secrets = {
        "database": "db-Secret-4711",
        "inbound": ftp_server.password,
        "smtp": "smtp-Secret-4712",
        "operator": "operator-Secret-4713",
        "key": "flask-Secret-4714",
    }
    service.env["WAREHOUSE_DATABASE_URL"] = service.env["WAREHOUSE_DATABASE_URL"].replace(
        "postgres@", "postgres:{}@".format(secrets["database"])
    )
    # With STARTTLS, as the start-up check demands of an smtp:// URL with a password.
    service.env["WAREHOUSE_SMTP_URL"] = (
        service.env["WAREHOUSE_SMTP_URL"].replace("smtp://", "smtp://mailer:{}@".format(secrets["smtp"]))
        + "?starttls=true"
    )
    service.env["WAREHOUSE_OPERATORS"] = "anna:" + generate_password_hash(secrets["operator"])
    service.env["WAREHOUSE_SECRET_KEY"] = secrets["key"]
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    service.run("poll", "--at", "2026-11-26T10:00")
    service.run("import", str(MALFORMED_SAMPLE))
    service.run("send-mail")  # fails: the test SMTP server offers no STARTTLS
    service.run("poll", "--at", "2026-11-26T10:30", WAREHOUSE_FTP_TIMEOUT="nonsense")
    service.run(
        "migrate",
        WAREHOUSE_DATABASE_URL="postgresql://postgres:{}@127.0.0.1:{}/x".format(secrets["database"], free_port()),
    )
    port = free_port()
    web = service.start("--port", str(port), "--no-scheduler", program="warehouse-web")
    wait_for_port(port, timeout=60)
    import urllib.request

    for path in ("/api/session", "/login", "/healthz"):
        try:
            urllib.request.urlopen("http://127.0.0.1:{}{}".format(port, path), timeout=10).read()
        except Exception:
            pass
    service.finish(web)
    everything = "\n".join(service.outputs)
    assert "not delivered" in everything or "SMTP" in everything
    for name, secret in secrets.items():
        if name == "operator":
            continue  # only its hash is configured; the hash must not show either
        assert secret not in everything, name + " leaked"
    assert service.env["WAREHOUSE_OPERATORS"].split(":", 1)[1] not in everything
    outcome("no password, key or hash in {} lines of output".format(everything.count("\n")))


@pytest.mark.fault("cookies, headers, debugger", "HTTPS request; FLASK_DEBUG=1 in the environment")
def test_cookie_flags_headers_and_no_debugger(make_settings, monkeypatch, outcome):
    from tests.fakes import FakeStore
    from warehouse_core.bootstrap import bootstrap
    from warehouse_web import create_app

    monkeypatch.setenv("FLASK_DEBUG", "1")
    core = bootstrap(make_settings(operators="anna:" + generate_password_hash("pw")), store=FakeStore())
    app = create_app(core=core)
    assert app.debug is False and app.config["DEBUG"] is False
    client = app.test_client()
    page = client.get("/login", base_url="https://warehouse.example")
    cookie = page.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    plain = app.test_client().get("/login")
    assert "Secure" not in plain.headers["Set-Cookie"]
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    # The app itself believes no forwarding header; waitress does, from the trusted proxy only.
    forged = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in forged.headers["Set-Cookie"]
    for template in (SRC / "warehouse_web" / "templates").glob("*.html"):
        text = template.read_text()
        assert "<script>" not in text and " on" + "click=" not in text, template.name
    outcome("Secure over TLS, HttpOnly, SameSite=Lax; CSP without inline script; debugger off")


def _sql_argument_is_safe(node: ast.AST) -> bool:
    """A constant, a concatenation of constants and UPPER_CASE module constants, or sql.SQL(...)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        return node.id.isupper()
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _sql_argument_is_safe(node.left) and _sql_argument_is_safe(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        inner = node.func.value
        if node.func.attr == "format" and isinstance(inner, ast.Call):
            return _sql_argument_is_safe(inner)
        if node.func.attr == "SQL":
            return all(_sql_argument_is_safe(a) for a in node.args)
    return False


@pytest.mark.fault("SQL built only from constants", "static check of every execute() and copy()")
def test_every_sql_statement_is_parameterised(outcome):
    checked = 0
    unsafe = []
    for path in (SRC / "warehouse_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "copy", "_one", "_changed")
            ):
                if not node.args:
                    continue
                checked += 1
                if not _sql_argument_is_safe(node.args[0]) and not (
                    isinstance(node.args[0], ast.Name) and node.args[0].id in ("query", "statements")
                ):
                    unsafe.append("{}:{}".format(path.name, node.lineno))
    assert checked > 30 and unsafe == []
    outcome("{} statements: constants, sql.SQL and sql.Identifier only".format(checked))


def _get(port, path, source="127.0.0.1", headers=None):
    """GET from a chosen loopback source address (127.0.0.2 is another host as far as waitress knows)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


@pytest.mark.fault("forwarded headers", "X-Forwarded-Proto from the trusted proxy, and forged from elsewhere")
def test_only_the_trusted_proxy_makes_the_cookie_secure(service, outcome):
    port = free_port()
    web = service.start(
        "--port",
        str(port),
        "--no-scheduler",
        program="warehouse-web",
        WAREHOUSE_TRUSTED_PROXY="127.0.0.1",
        WAREHOUSE_OPERATORS="anna:" + generate_password_hash("pw"),
    )
    try:
        wait_for_port(port, timeout=60)
        https = {"X-Forwarded-Proto": "https"}
        behind_proxy = _get(port, "/login", headers=https).getheader("Set-Cookie")
        forged = _get(port, "/login", source="127.0.0.2", headers=https).getheader("Set-Cookie")
        plain = _get(port, "/login").getheader("Set-Cookie")
    finally:
        service.finish(web)
    assert "Secure" in behind_proxy and "HttpOnly" in behind_proxy
    assert "Secure" not in forged and "Secure" not in plain
    outcome("Secure from the proxy at 127.0.0.1; the same header from 127.0.0.2 ignored")


@pytest.mark.fault(
    "login throttling through waitress",
    "wrong passwords behind the proxy, and X-Forwarded-For forged to dodge the lock",
)
def test_throttling_counts_the_real_client_behind_the_proxy_and_ignores_forged_addresses(service, outcome):
    import base64

    port = free_port()
    web = service.start(
        "--port",
        str(port),
        "--no-scheduler",
        program="warehouse-web",
        WAREHOUSE_TRUSTED_PROXY="127.0.0.1",
        WAREHOUSE_OPERATORS="anna:" + generate_password_hash("pw", method="pbkdf2:sha256:1000"),
    )

    def basic(password, source="127.0.0.1", client=None):
        headers = {"Authorization": "Basic " + base64.b64encode("anna:{}".format(password).encode()).decode()}
        if client is not None:
            headers["X-Forwarded-For"] = client
        return _get(port, "/api/session", source=source, headers=headers).status

    try:
        wait_for_port(port, timeout=60)
        through_proxy = [basic("wrong", client="203.0.113.9") for _ in range(5)]
        locked_client = basic("pw", client="203.0.113.9")
        other_client = basic("pw", client="203.0.113.10")
        # Not the proxy: its X-Forwarded-For is dropped, so changing it every time changes nothing.
        dodging = [basic("wrong", source="127.0.0.2", client="198.51.100.{}".format(n)) for n in range(5)]
        dodger_locked = basic("pw", source="127.0.0.2", client="198.51.100.99")
    finally:
        service.finish(web)
    assert through_proxy == [401] * 5 and locked_client == 429 and other_client == 200
    assert dodging == [401] * 5 and dodger_locked == 429
    outcome("locked per real client behind the proxy; a forged X-Forwarded-For did not dodge the lock")
