"""Bad input on purpose: a fuzzed parser, hostile uploads against the real web server, odd names."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import VALID_SAMPLE
from tests.faults.conftest import query
from warehouse_core.parsing import ParseTally, inspect, parse_lines
from warehouse_devstack.servers import free_port, wait_for_port

line = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda parts: "|".join(parts),
        st.lists(
            st.one_of(
                st.text(max_size=12), st.sampled_from(["6", "600000001", "12", "1.50", "70,7", " Frutta , frutta "])
            ),
            max_size=6,
        ),
    ),
)
files = st.one_of(
    st.binary(max_size=3000),
    st.builds(
        lambda rows, end: end.join(rows).encode("utf-8"), st.lists(line, max_size=40), st.sampled_from(["\n", "\r\n"])
    ),
    st.builds(lambda rows: "\n".join(rows).encode("cp1252", "replace"), st.lists(line, max_size=40)),
)


@pytest.mark.fault("parser fuzzed", "10,000 generated files: bytes, text, cp1252")
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(files)
def test_ten_thousand_generated_files_never_raise(data):
    facts = inspect(io.BytesIO(data))
    tally = ParseTally()
    lines = list(parse_lines(io.BytesIO(data), facts.encoding, tally))
    assert tally.total_lines == facts.line_count
    assert (
        tally.valid_lines + tally.ignored_lines + tally.problem_count
        == tally.total_lines
        == len(lines) + tally.ignored_lines + tally.problem_count
    )
    for parsed in lines:
        assert len(parsed.invoice_number) == 9 and parsed.invoice_number.startswith("6") and parsed.quantity >= 0


@pytest.fixture
def web(service):
    port = free_port()
    process = service.start("--port", str(port), "--no-scheduler", program="warehouse-web", WAREHOUSE_MAX_UPLOAD_MB="1")
    wait_for_port(port, timeout=60)
    yield port, process
    service.finish(process)


def http(port, method, path, body=b"", headers=None, cookie=None):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = dict(headers or {})
    if cookie:
        headers["Cookie"] = cookie
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data


def csrf_session(port):
    response, page = http(port, "GET", "/")
    cookie = response.getheader("Set-Cookie").split(";")[0]
    token = page.decode().split('name="csrf-token" content="')[1].split('"')[0]
    return cookie, token


def upload(port, name, content):
    cookie, token = csrf_session(port)
    boundary = "warehouse-boundary"
    body = (
        '--{b}\r\nContent-Disposition: form-data; name="file"; filename="{n}"\r\nContent-Type: text/plain\r\n\r\n'.format(
            b=boundary, n=name
        ).encode("utf-8", "surrogateescape")
        + content
        + "\r\n--{}--\r\n".format(boundary).encode()
    )
    return http(
        port,
        "POST",
        "/api/session/upload",
        body,
        {"Content-Type": "multipart/form-data; boundary=" + boundary, "X-CSRF-Token": token},
        cookie,
    )


def rss_mb(pid):
    with open("/proc/{}/status".format(pid)) as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


@pytest.mark.fault("hostile uploads", "empty, binary, odd and traversal names")
def test_empty_binary_and_oddly_named_uploads(web, service, real_store, outcome):
    port, _ = web
    assert upload(port, "empty.txt", b"")[0].status == 400
    # Junk whose lines are all foreign would be a valid file of ignored lines (SPEC §5): each of
    # these starts with a line that claims an invoice (a leading 6) and is garbage.
    assert upload(port, "blob.bin", b"6" + os.urandom(50_000))[0].status == 400
    assert upload(port, "../../../../tmp/evil", b"6|x")[0].status == 400
    response, body = upload(port, "..\\..\\Letture20261126083015123_9.txt", VALID_SAMPLE.read_bytes())
    assert response.status == 201, body
    names = [row[0] for row in query(real_store, "SELECT name FROM inbound_file ORDER BY id")]
    assert names[-1] == "Letture20261126083015123_9.txt"
    archive = service.data_dir / "archive"
    for path in service.data_dir.rglob("*"):
        assert service.data_dir in path.resolve().parents
    assert not (service.data_dir.parent / "evil").exists() and not os.path.exists("/tmp/evil")
    assert len([p for p in archive.rglob("*") if p.is_file()]) == 3  # an empty upload is not kept
    outcome("400 for empty, binary and junk; traversal names archived inside the data folder")


@pytest.mark.fault("an upload over the limit", "2 MB to a web server whose limit is 1 MB")
def test_an_upload_over_the_limit_gets_json_naming_the_limit(web, outcome):
    port, _ = web
    response, body = upload(port, "Letture20261126083015123_9.txt", b"6" * (2 * 1024 * 1024))
    assert response.status == 413, body[:200]
    assert response.getheader("Content-Type") == "application/json", body[:200]
    assert json.loads(body) == {"error": "The file is larger than the 1 MB upload limit."}
    outcome("413 with the sentence naming the 1 MB limit, as JSON")


@pytest.mark.fault("a 1 GB upload", "Content-Length: 1 GB, then bytes")
def test_a_one_gigabyte_upload_is_refused_before_it_is_read(web, outcome):
    port, process = web
    cookie, token = csrf_session(port)
    before = rss_mb(process.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(
            "POST /api/session/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: {}\r\nX-CSRF-Token: {}\r\nCookie: {}\r\n\r\n".format(1024**3, token, cookie).encode()
        )
        began = time.monotonic()
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:
                raw.sendall(b"6" * 65536)
                sent += 65536
        except OSError:
            pass  # the server hung up: it would not read a gigabyte
        raw.settimeout(30)
        answer = raw.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - began < 30
    assert rss_mb(process.pid) - before < 50
    outcome("413 after at most {} MB sent; server RSS flat".format(sent // (1024 * 1024)))


@pytest.mark.fault("odd names in the FTP listing", "non-UTF-8 and look-alike names beside today's file")
def test_odd_names_in_the_ftp_listing(service, real_store, ftp_server, smtp_server, outcome):
    shutil.copy(str(VALID_SAMPLE), str(ftp_server.root))
    odd = [b"Letture\xe9\xff.txt", b"Letture20261126083015123_9.txt.bak", b"..Letture20261126083015123_9.txt"]
    for name in odd:
        with open(os.path.join(os.fsencode(str(ftp_server.root)), name), "wb") as handle:
            handle.write(b"600000001|1|x|1")
    result = service.run("poll", "--at", "2026-11-26T10:00")
    assert result.returncode == 0, result.stderr
    assert query(real_store, "SELECT count(*) FROM invoice_line") == [(8,)]
    left = sorted(os.listdir(os.fsencode(str(ftp_server.root))))
    assert left == sorted(odd)
    outcome("today's file imported; odd names left untouched")
