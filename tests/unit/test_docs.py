"""The README is the front door and links one page per reader under docs/; every command, query or
configuration block in those pages is run or checked by a named test, so a page cannot promise what
the code does not do."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = ("docs/operators.md", "docs/ops.md", "docs/dba.md", "docs/developers.md")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.S | re.M)

# Each block that holds something to run (a command, a query, a program, a configuration) and the
# test that runs or checks it, by page and its position among the page's blocks.
RUN_BY: Dict[Tuple[str, int], str] = {
    ("README.md", 0): "tests/unit/test_docs.py::test_the_two_setup_commands_are_what_make_runs",
    ("docs/dba.md", 0): "tests/integration/test_database_by_hand.py::test_the_dba_pages_commands_apply_the_schema",
    ("docs/dba.md", 1): (
        "tests/integration/test_database_by_hand.py"
        "::test_the_readme_dba_queries_run_in_the_service_schema_and_find_what_they_promise"
    ),
    ("docs/developers.md", 0): "tests/unit/test_docs.py::test_the_architecture_snippet_runs_as_printed",
    ("docs/ops.md", 0): "tests/unit/test_deployment.py::test_the_programs_are_those_of_the_venv_the_steps_create",
    ("docs/ops.md", 1): "tests/unit/test_docs.py::test_the_reverse_proxy_sends_to_where_warehouse_web_listens",
    ("docs/ops.md", 2): "tests/unit/test_docs.py::test_the_log_sample_names_real_loggers",
}
# What a block's info string says it holds; every block says one.
RUNNABLE = {"sh", "sql", "python", "nginx"}
SHOWN_ONLY = {"text"}


def blocks(page: str) -> List[Tuple[str, str]]:
    return FENCE.findall((ROOT / page).read_text(encoding="utf-8"))


def block(page: str, index: int, info: str) -> str:
    found = blocks(page)[index]
    assert found[0] == info, (page, index)
    return found[1]


def test_the_readme_links_every_page_and_every_page_leads_back():
    readme = README.read_text(encoding="utf-8")
    for page in PAGES:
        assert "]({})".format(page) in readme, page
        assert "](../README.md)" in (ROOT / page).read_text(encoding="utf-8"), page


def test_every_relative_link_of_the_docs_finds_its_file():
    for page in ("README.md",) + PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (ROOT / page).read_text(encoding="utf-8")):
            assert ((ROOT / page).parent / target).exists(), (page, target)


def test_every_block_says_what_it_holds_and_each_runnable_one_has_its_test():
    claimed = set()
    for page in ("README.md",) + PAGES:
        for index, (info, _) in enumerate(blocks(page)):
            assert info in RUNNABLE | SHOWN_ONLY, (page, index, info)
            claimed.add((page, index))
            assert (page, index) in RUN_BY, "{} block {} ({}) is run by no test".format(page, index, info)
    assert set(RUN_BY) == claimed, "RUN_BY names a block that is no longer there"


@pytest.mark.parametrize("where", sorted(RUN_BY))
def test_each_named_test_exists_and_reads_its_page(where):
    page, _ = where
    path, name = RUN_BY[where].split("::")
    source = (ROOT / path).read_text(encoding="utf-8")
    functions = {node.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)}
    assert name in functions, RUN_BY[where]
    assert Path(page).name in source, "{} does not read {}".format(path, page)


def test_the_two_setup_commands_are_what_make_runs():
    """The README's opening block, dry-run by make: each line is a target that starts the demo
    stack or pytest."""
    lines = [line.split("#")[0].split() for line in block("README.md", 0, "sh").splitlines() if line.strip()]
    assert lines == [["make", "run"], ["make", "test"]]
    expected = {"run": "-m warehouse_devstack", "test": "-m pytest"}
    for words in lines:
        # --no-print-directory: under `make test` (a nested make) make would end on "Leaving directory".
        dry = subprocess.run(
            words + ["-n", "--no-print-directory"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert expected[words[1]] in dry.stdout.strip().splitlines()[-1], dry.stdout


def test_the_reverse_proxy_sends_to_where_warehouse_web_listens():
    from warehouse_core.settings import Settings
    from warehouse_web.cli import parser

    config = block("docs/ops.md", 1, "nginx")
    defaults = parser().parse_args([])
    assert "proxy_pass http://{}:{};".format(defaults.host, defaults.port) in config
    body_limit = re.search(r"client_max_body_size (\d+)m;", config)
    assert body_limit is not None
    assert int(body_limit.group(1)) > Settings.model_fields["max_upload_mb"].default
    assert "X-Forwarded-For $remote_addr;" in config and "X-Forwarded-Proto https;" in config


def test_the_log_sample_names_real_loggers():
    for line in block("docs/ops.md", 2, "text").splitlines():
        level, logger = line.split()[:2]
        assert level in {"INFO", "WARNING", "ERROR"}, line
        module = logger.rstrip(":")
        assert (ROOT / "src" / (module.replace(".", "/") + ".py")).exists(), line


def test_the_architecture_snippet_runs_as_printed():
    """The developers' page prints a shell command that runs a use case on the fakes; run from the
    checkout's root with this interpreter in place of .venv's, it prints the poll's outcome."""
    command = block("docs/developers.md", 0, "sh")
    assert ".venv/bin/python" in command
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        ["bash", "-c", command.replace(".venv/bin/python", sys.executable)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Letture" in done.stdout, done.stdout


def metrics_section() -> str:
    text = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    return text.split("## Metrics and alerts", 1)[1].split("\n## ", 1)[0]


def served_metric_names(world) -> set:
    from warehouse_web import create_app

    text = create_app({"TESTING": True}, core=world.core).test_client().get("/metrics").get_data(as_text=True)
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def test_the_metrics_the_ops_page_lists_are_those_warehouse_web_serves(world):
    world.poll("2026-11-26T10:00")
    [row] = [line for line in metrics_section().splitlines() if line.startswith("| `GET /metrics`")]
    documented = {name.split("{")[0] for name in re.findall(r"`(warehouse_[a-z_]+(?:\{[a-z]+\})?)`", row)}
    served = served_metric_names(world)
    assert documented <= served, documented - served
    assert {name.replace("_total", "") for name in served} <= {name.replace("_total", "") for name in documented}


def test_each_suggested_alert_reads_a_metric_that_is_served(world):
    alerts = metrics_section().split("Suggested alerts", 1)[1]
    expressions = re.findall(r"`([^`]+)`", alerts)
    assert expressions
    served = served_metric_names(world)
    for expression in expressions:
        assert set(re.findall(r"warehouse_[a-z_]+", expression)) <= served, expression


def test_the_ops_page_says_only_warehouse_web_serves_metrics():
    """warehouse-runner listens on no port (it has no --port to give): the page must not send a
    scrape there."""
    from warehouse_runner.cli import parser

    assert "--port" not in parser().format_help()
    section = " ".join(metrics_section().split())
    assert "Only `warehouse-web` serves `/metrics`; `warehouse-runner` listens on no port" in section
    assert "`warehouse-web` and `warehouse-runner` report the same" not in section


PLACEHOLDERS = {"H": "127.0.0.1", "P": "8000", "N": "5", "FILE": "Letture.txt", "DAY": "2026-11-26"}
PLACEHOLDERS.update({"D": "2026-11-26", "TEXT": "why", "TIME": "2026-11-26T19:00"})


def documented_command_lines() -> List[List[str]]:
    """Each row of the Commands table as the words it shows, options in brackets included."""
    section = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8").split("## Commands", 1)[1].split("\n## ", 1)[0]
    found = []
    for line in section.splitlines():
        match = re.match(r"^\| `(warehouse-(?:runner|web)[^`]*)` \|", line)
        if match:
            words = match.group(1).replace("[", " ").replace("]", " ").split()
            found.append([PLACEHOLDERS.get(word, word) for word in words])
    return found


def parser_of(program: str):
    from warehouse_runner import cli as runner_cli
    from warehouse_web import cli as web_cli

    return {"warehouse-runner": runner_cli.parser, "warehouse-web": web_cli.parser}[program]()


def options_of(parser) -> set:
    return {option for action in parser._actions for option in action.option_strings} - {"-h", "--help"}


def subparsers_of(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_documented_command_line_is_accepted_by_its_program():
    lines = documented_command_lines()
    assert len(lines) >= 9
    for words in lines:
        parser_of(words[0]).parse_args(words[1:])  # a usage error exits 2 and fails the test


def test_every_command_and_option_of_the_programs_is_documented():
    documented_options = {}
    for words in documented_command_lines():
        key = (words[0],) + tuple(w for w in words[1:3] if not w.startswith("-") and w not in PLACEHOLDERS.values())
        documented_options.setdefault(key, set()).update(w for w in words if w.startswith("-"))
    runner = parser_of("warehouse-runner")
    for name, sub in subparsers_of(runner).items():
        nested = subparsers_of(sub)
        for leaf, leaf_parser in nested.items() if nested else [(None, sub)]:
            key = ("warehouse-runner", name) + ((leaf,) if leaf else ())
            assert key in documented_options, "warehouse-runner {} is not in the Commands table".format(name)
            assert options_of(leaf_parser) <= documented_options[key], (key, options_of(leaf_parser))
    assert options_of(parser_of("warehouse-web")) <= documented_options[("warehouse-web",)]


MAKE_COMMAND = re.compile(r'make ([a-z][a-z-]*)((?: [A-Z_]+=(?:"[^"]*"|\S+))*)')


def test_every_make_command_the_pages_show_names_a_target_and_options_its_program_takes():
    """``make run RUN_ARGS="--fresh --no-sample"`` and the like: the target is in the Makefile, and
    the options are accepted by the program the target runs (its own parser, nothing started)."""
    import importlib.util
    import shlex

    from warehouse_devstack.stack import parser as run_parser

    spec = importlib.util.spec_from_file_location("bench_script", str(ROOT / "bench" / "bench.py"))
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    takers = {"RUN_ARGS": run_parser(), "BENCH_ARGS": bench.parser()}
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    seen = set()
    for page in ("README.md",) + PAGES:
        for code in re.findall(r"`([^`\n]+)`|```sh\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), re.S):
            for target, assignments in MAKE_COMMAND.findall(" ".join(code)):
                assert target in targets, (page, target)
                seen.add(target)
                for name, value in re.findall(r'([A-Z_]+)=("[^"]*"|\S+)', assignments):
                    if name in takers:
                        takers[name].parse_args(shlex.split(shlex.split(value)[0]))
    assert {"run", "test", "bench", "test-faketime"} <= seen


def test_the_readmes_screenshots_are_there_and_are_states_the_browser_tests_photograph():
    readme = README.read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]+\]\((docs/screenshots/([a-z0-9-]+)\.png)\)", readme)
    assert len(images) >= 3
    browser_tests = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests" / "browser").glob("*.py"))
    for path, name in images:
        assert (ROOT / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        assert 'shot(page, "{}")'.format(name) in browser_tests, name
