"""Dev-only code (the servers and demo stack of ``make run``) stays out of the installed product."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

from setuptools import find_packages

from warehouse_devstack import demo
from warehouse_web import create_app

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_packages_are_the_product_only():
    top_level = {name.split(".")[0] for name in find_packages(where=str(ROOT / "src"))}
    assert top_level == {"warehouse_core", "warehouse_runner", "warehouse_web"}


def test_no_product_module_imports_the_devstack():
    users = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "src").rglob("*.py")
        if re.search(r"\bwarehouse_devstack\b", path.read_text(encoding="utf-8"))
    ]
    assert users == []


def test_the_product_app_has_no_demo_panel(world):
    client = create_app({"TESTING": True}, core=world.core).test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'id="demo"' not in page and "demo.js" not in page
    assert client.get("/demo/mail").status_code == 404


def test_the_devstack_installs_the_demo_panel_on_the_app(world, tmp_path):
    message = EmailMessage()
    message["Subject"] = "Invoice file imported"
    message["X-Warehouse-Event"] = "import-summary"
    message.set_content("8 lines stored")
    (tmp_path / "0001.eml").write_bytes(message.as_bytes())
    app = create_app({"TESTING": True}, core=world.core)
    demo.install(app, tmp_path)
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'id="demo"' in page and "/demo/static/demo.js" in page
    assert client.get("/demo/static/demo.js").status_code == 200
    assert client.get("/demo/mail").get_json()["mails"][0]["event"] == "import-summary"
    assert "8 lines stored" in client.get("/demo/mail/0001.eml").get_data(as_text=True)
