"""docs/settings.md cannot go stale (issue 23), nor the alerts table: every setting the code reads (shared/, functions/, function_app.py;
found by tests/docs/settings_read.py) has a row with the code's default, and the docs name no setting the code does
not read."""

from __future__ import annotations

import ast
import re
from collections import defaultdict

from tests.docs.settings_read import ROOT, Read, reads

DOC = ROOT / "docs" / "settings.md"
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|([^|]*)\|", re.M)
SETTING = re.compile(r"`(VMKEEPER_[A-Z0-9_]+)`")


def _rows(text: str) -> dict[str, str]:
    rows: dict[str, str] = {}
    for name, default in ROW.findall(text):
        assert name not in rows, f"docs/settings.md: {name} has two rows"
        rows[name] = default.strip()
    return rows


def _problems(found: list[Read], text: str) -> list[str]:
    rows = _rows(text)
    by_name: dict[str, list[Read]] = defaultdict(list)
    for read in found:
        by_name[read.name].append(read)
    problems = []
    for name, its in sorted(by_name.items()):
        where = ", ".join(sorted({r.where for r in its}))
        if its[0].pattern:
            if not any(re.fullmatch(name, row) for row in rows):
                problems.append(f"{name} (a pattern; {where}): no row names a setting it matches")
            continue
        if name not in rows:
            problems.append(f"{name} ({where}): not in docs/settings.md")
            continue
        cell = rows[name]
        for default in sorted({r.default for r in its if r.default is not None}):
            if f"`{default}`" not in cell:
                problems.append(f"{name} ({where}): the code's default `{default}` is not its row's ({cell!r})")
        if any(r.required for r in its) and all(r.default is None for r in its) and "(required)" not in cell:
            problems.append(f"{name} ({where}): required with no default, its row says {cell!r}")
    names = set(by_name)
    patterns = [n for n, its in by_name.items() if its[0].pattern]
    for row in rows:
        if row not in names and not any(re.fullmatch(p, row) for p in patterns):
            problems.append(f"{row}: docs/settings.md lists it, the code does not read it")
    return problems


def test_every_setting_the_code_reads_is_documented_with_its_default():
    problems = _problems(reads(), DOC.read_text(encoding="utf-8"))
    assert not problems, "docs/settings.md is stale:\n" + "\n".join(problems)


def test_the_docs_name_no_setting_the_code_does_not_read():
    """Beyond the reference: a VMKEEPER_* setting any page names (a capability's own table) is one the code reads.
    (infra/README.md also names azd's environment values, Bicep outputs the hooks read, that are no app settings.)"""
    read = {r.name for r in reads()}
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    stale = sorted({f"{p.relative_to(ROOT)}: {name}" for p in pages
                    for name in SETTING.findall(p.read_text(encoding="utf-8")) if name not in read})
    assert not stale, "settings the code does not read:\n" + "\n".join(stale)


def test_the_check_finds_what_goes_stale(tmp_path):
    """The checks above fail as they must: a setting the doc lacks, a default changed in code, a required setting
    documented with a default, a row for a setting no longer read; and the reader finds each way the code reads."""
    code = tmp_path / "settings.py"
    code.write_text(
        "import os\n"
        "NAME = 'X_CONST'\n"
        "def f(env):\n"
        "    _get(env, 'X_REQUIRED')\n"
        "    _int(env, 'X_COUNT', 12, 1, 100)\n"
        "    env.get(NAME)\n"
        "    os.environ.get(f'X_{kind}_URI')\n"
        "    run.setting('X_CLI') or 'azure-cli'\n")
    found = reads([code])
    assert {(r.name, r.default, r.required) for r in found} == {
        ("X_REQUIRED", None, True), ("X_COUNT", "12", False), ("X_CONST", None, False),
        (r"X_\w+_URI", None, False), ("X_CLI", "azure-cli", False)}
    good = ("| `X_REQUIRED` | (required) | a |\n| `X_COUNT` | `12` | b |\n| `X_CONST` | — | c |\n"
            "| `X_a_URI` | — | d |\n| `X_CLI` | `azure-cli` | e |\n")
    assert _problems(found, good) == []
    assert any("X_COUNT" in p and "`12`" in p for p in _problems(found, good.replace("`12`", "`10`")))
    assert any("X_REQUIRED" in p for p in _problems(found, good.replace("(required)", "`x`")))
    assert any("X_CLI" in p and "not in" in p for p in _problems(found, good.replace("| `X_CLI` | `azure-cli` | e |\n", "")))
    assert any("X_GONE" in p for p in _problems(found, good + "| `X_GONE` | — | f |\n"))


def test_the_capability_pages_show_the_code_defaults():
    """A capability page's own settings table (a row naming one setting) shows the code's default too, so the page
    an operator reads first does not contradict docs/settings.md."""
    by_name: dict[str, set[str]] = defaultdict(set)
    for read in reads():
        if read.default is not None:
            by_name[read.name].add(read.default)
    stale = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page == DOC:
            continue
        for name, cell in ROW.findall(page.read_text(encoding="utf-8")):
            for default in sorted(by_name.get(name, ())):
                if not re.search(r"(?<![\w{])" + re.escape(default) + r"(?![\w}])", cell):
                    stale.append(f"{page.relative_to(ROOT)}: {name} says {cell.strip()!r}, the code's default is {default!r}")
    assert not stale, "\n".join(stale)


def test_every_alert_type_is_in_the_alerts_table():
    """The alerts table operators read (docs/compliance-alerts-report.md) names every CloudEvent type vmkeeper raises
    (shared/alerts/events.py), written out or as `vmkeeper.x.a` / `.b` (the same prefix)."""
    tree = ast.parse((ROOT / "shared" / "alerts" / "events.py").read_text(encoding="utf-8"))
    raised = {n.value.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
              and isinstance(n.value.value, str) and n.value.value.startswith("vmkeeper.")}
    assert len(raised) > 15
    table = set()
    for name_cell in re.findall(r"^\|([^|]*)\|", (ROOT / "docs" / "compliance-alerts-report.md").read_text(), re.M):
        full = re.findall(r"`(vmkeeper\.[a-z_.]+)`", name_cell)
        table.update(full)
        if full:  # `.b` after `vmkeeper.x.a`: the first name's prefix up to its second part
            prefix = ".".join(full[0].split(".")[:2])
            table.update(prefix + short for short in re.findall(r"`(\.[a-z_.]+)`", name_cell))
    assert not raised - table, f"alert types not in the table: {sorted(raised - table)}"
