"""The CLI as installed: the console script names the click group, click and rich are pinned project
dependencies (not the Function App's), the app never imports the CLI (nor ships it: .funcignore), and
importing the CLI stays light (no Azure SDK, rich or requests until a command needs them)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import click

from tests.test_import_graph import files_of, imported_modules

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_script_is_the_click_group_and_its_dependencies_are_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, name = project["scripts"]["vmkeeper"].partition(":")
    group = getattr(__import__(module, fromlist=[name]), name)
    assert isinstance(group, click.Group)
    assert set(group.commands) == {"status", "plan", "points", "restore", "report", "drills", "failover", "files", "export",
                                   "jobs", "cost"}
    assert sorted(project["dependencies"]) == ["PyYAML==6.0.4", "click==8.5.1", "jmespath==1.1.0", "rich==15.0.0"]
    assert not any(line.split("==")[0] in ("click", "rich", "jmespath", "PyYAML")
                   for line in (ROOT / "requirements.txt").read_text().split())
    assert "shared/cli/" in (ROOT / ".funcignore").read_text().splitlines()


def test_the_app_never_imports_the_cli():
    app = [ROOT / "function_app.py", *files_of("functions"), *(p for p in files_of("shared") if "cli" not in p.parts)]
    found = [f"{p.relative_to(ROOT)}:{line}" for p in app for line, module in imported_modules(p)
             if module == "shared.cli" or module.startswith("shared.cli.")]
    assert found == []


def test_importing_the_cli_is_light():
    code = ("import sys, shared.cli.main; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'azure', 'rich', 'requests', 'jsonschema', 'jmespath', 'yaml'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "[]"


def test_the_cli_vocabulary_is_the_apps():
    """Kept apart so --help imports nothing heavy; the same words as the modules that define them."""
    from shared.cli import main
    from shared.report.model import STATES
    from shared.restore.request import TARGET_TYPES

    assert main.STATES == STATES and main.TARGET_TYPES + main.LEASED_TARGETS == TARGET_TYPES
