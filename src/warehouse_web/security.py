"""CSRF tokens, operator login (session or HTTP Basic) with its throttling, and security headers."""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import secrets
import threading
from typing import Callable, Dict, List, Mapping, Optional

from flask import Flask, Response, request, session
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import check_password_hash, generate_password_hash

CSRF_SESSION_KEY = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
USER_SESSION_KEY = "operator"
THROTTLE_KEY = "warehouse_login_throttle"
# Checked when the user is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def csrf_token() -> str:
    token = session.get(CSRF_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return str(token)


def csrf_valid() -> bool:
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(str(expected), str(sent))


def password_ok(operators: Mapping[str, str], user: str, password: str) -> bool:
    stored = operators.get(user)
    if stored is None:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(stored, password)


def basic_credentials() -> Optional[tuple]:
    """(user, password) of an HTTP Basic Authorization header, or None."""
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username and auth.password is not None:
        return auth.username, auth.password
    return None


def current_operator(operators: Mapping[str, str], on_failure: Callable[[], None] = lambda: None) -> Optional[str]:
    """The logged-in operator (cookie session or HTTP Basic), or None; ``on_failure`` is told of
    a wrong Basic password."""
    user = session.get(USER_SESSION_KEY)
    if user in operators:
        return str(user)
    credentials = basic_credentials()
    if credentials is not None:
        if password_ok(operators, *credentials):
            return credentials[0]
        on_failure()
    return None


def throttled_as(address: str) -> str:
    """What one client is counted as: its IPv4 address, or the /64 of its IPv6 one (a single
    client holds a whole /64 and could otherwise try every password from a new address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """After ``attempts`` failed logins from one address within ``window``, that address is
    refused for ``lock``, whatever it sends: a right password does not end the lock early.

    Time comes from ``now`` (the core's clock), so tests move it instead of sleeping. The state is
    per process: warehouse-web serves with threads in one process.
    """

    def __init__(
        self,
        now: Callable[[], dt.datetime],
        attempts: int = 5,
        window: dt.timedelta = dt.timedelta(minutes=5),
        lock: dt.timedelta = dt.timedelta(minutes=5),
        max_addresses: int = 10000,
    ) -> None:
        self.now = now
        self.attempts = attempts
        self.window = window
        self.lock = lock
        self.max_addresses = max_addresses
        self._failures: Dict[str, List[dt.datetime]] = {}
        self._locked_until: Dict[str, dt.datetime] = {}
        self._mutex = threading.Lock()

    def retry_after(self, address: str) -> Optional[int]:
        """Whole seconds until ``address`` may try again, or None when it may try now."""
        address = throttled_as(address)
        now = self.now()
        with self._mutex:
            until = self._locked_until.get(address)
            if until is None:
                return None
            if now >= until:
                del self._locked_until[address]
                return None
            return max(1, int((until - now).total_seconds() + 0.999))

    def failed(self, address: str) -> None:
        address = throttled_as(address)
        now = self.now()
        with self._mutex:
            if len(self._failures) >= self.max_addresses:
                self._forget_old(now)
            recent = [at for at in self._failures.get(address, []) if now - at < self.window]
            recent.append(now)
            if len(recent) >= self.attempts:
                self._locked_until[address] = now + self.lock
                self._failures.pop(address, None)
            else:
                self._failures[address] = recent

    def _forget_old(self, now: dt.datetime) -> None:
        # Many addresses (a scan, or IPv6 clients): drop every count older than the window.
        for address in list(self._failures):
            if all(now - at >= self.window for at in self._failures[address]):
                del self._failures[address]
        for address in [a for a, until in self._locked_until.items() if now >= until]:
            del self._locked_until[address]


def add_security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


class SessionCookies(SecureCookieSessionInterface):
    """The session cookie is marked Secure whenever the page is served over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)
