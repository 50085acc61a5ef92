"""Every repository path the docs name exists (issue 23): a file or folder (``shared/restore/steps.py``,
``tests/app/``), a test named with ``::`` (the function or class is in the file), a link to another page (and its
``#anchor`` is one of that page's headings). Docs that name paths that moved mislead the operator who follows them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "infra" / "README.md",
        ROOT / "infra" / "LEAST_PRIVILEGE.md", ROOT / "emulator" / "README.md", ROOT / "devtools" / "README.md"]
# A path the docs name starts with one of the repository's top-level folders (a bare file name such as
# `policies.json` or `openapi.json` is read in its sentence's context, not as a path).
TOP = ("functions", "shared", "tests", "infra", "emulator", "devtools", "bench", "scripts", "docs", ".ci")
URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.I)
PATH = re.compile(r"(?<![\w/.@$%{-])((?:" + "|".join(re.escape(t) for t in TOP)
                  + r")/[\w./-]*+(?:::[\w:]+)?)(?![<>{}*…])")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Not paths: placeholders and patterns (`shared/<capability>/`, `tests/app/test_*.py`, `bench/{name}`).
PLACEHOLDER = re.compile(r"[<>{}*…]")
# What running things makes (`tests/output/`, `infra/hooks/hooks_env/`): named in .gitignore, absent from a checkout.
MADE_AT_RUN_TIME = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines() if "/" in line.strip()[:-1]}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", page.read_text(encoding="utf-8"), re.M)}


def _named(doc: Path, text: str) -> list[tuple[str, Path, str | None]]:
    """(as written, the path it names, the test or anchor it names) for each path and link in ``doc``'s text."""
    found = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if URL.match(target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        found.append((target, (doc.parent / path).resolve() if path else doc, "#" + anchor if anchor else None))
    for m in PATH.finditer(URL.sub(" ", LINK.sub(" ", text))):
        written = m.group(1).rstrip(".,;:")
        if PLACEHOLDER.search(written) or written.endswith("-"):
            continue
        path, _, test = written.partition("::")
        found.append((written, ROOT / path, test or None))
    return found


def _defines(source: Path, dotted: str) -> bool:
    """Whether the module defines ``dotted`` (``test_x``, or ``TestClass::test_x``) at its top level."""
    scope: list[ast.stmt] = ast.parse(source.read_text(encoding="utf-8")).body
    for name in dotted.split("::"):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == name), None)
        if node is None:
            return False
        scope = node.body if isinstance(node, ast.ClassDef) else []
    return True


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_the_docs_name_exists(doc):
    stale = []
    for written, path, extra in _named(doc, doc.read_text(encoding="utf-8")):
        if written in MADE_AT_RUN_TIME:
            continue
        if not path.exists():
            stale.append(f"{written}: no such file or folder")
        elif extra and extra.startswith("#"):
            if path.suffix == ".md" and extra[1:] not in _anchors(path):
                stale.append(f"{written}: no heading {extra} in {path.relative_to(ROOT)}")
        elif extra and not (path.suffix == ".py" and _defines(path, extra)):
            stale.append(f"{written}: no test {extra} in {path.relative_to(ROOT)}")
    assert not stale, f"{doc.relative_to(ROOT)} names paths that do not exist:\n" + "\n".join(stale)


def test_the_collector_sees_what_it_must():
    """The collector finds paths written the ways the docs write them, and leaves URLs and ids alone, so a stale
    path cannot hide from the test above by its spelling."""
    doc = ROOT / "docs" / "x.md"
    sample = ("see `shared/restore/steps.py`, tests/app/test_x.py::test_y, [a](../infra/README.md#deploy) and "
              "(shared/compliance/: pure). Not https://example.com/shared/x.py, `/subscriptions/s/resourceGroups/"
              "shared/x`, `shared/<capability>/`, nor `tests/app/test_*.py`.")
    named = [(w, e) for w, _, e in _named(doc, sample)]
    assert named == [("../infra/README.md#deploy", "#deploy"), ("shared/restore/steps.py", None),
                     ("tests/app/test_x.py::test_y", "test_y"), ("shared/compliance/", None)]
