"""The settings the code reads, found in its source (ast): what tests/docs/test_settings_doc.py holds
docs/settings.md to. A read is a literal name handed to settings.py's readers (``_get``, ``_int``, ``_bool``,
``_json_object``), to ``.get``/``[...]``/``in`` of an environment (``env``, ``self.env``, ``os.environ``), to the
CLI's ``.setting(...)``, or a binding expression ``%NAME%`` in functions/ (the Functions host reads those)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READERS = {"_get": 2, "_int": 2, "_bool": 2, "_json_object": 2}  # reader → index of its default argument
BINDING = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


@dataclass(frozen=True)
class Read:
    name: str  # a setting's name, or a pattern (regex) where the code builds it (AzureWebJobsStorage__{service}…)
    default: str | None  # the code's default, as the docs write it; None: none given
    required: bool  # read with no default by a reader that refuses a missing value
    where: str  # file:line
    pattern: bool = False


def _is_env(node: ast.expr) -> bool:
    text = ast.unparse(node)
    return text in ("os.environ", "environ") or text.split(".")[-1] in ("env", "environ")


def _constants(tree: ast.Module) -> dict[str, object]:
    """The module's named constants (``NAME = "x"``, ``A, B = "x", "y"``, ``D = {"x": ...}``) and its classes'
    constant attributes (``arm_endpoint: str = "https://…"``, read as ``cls.arm_endpoint``)."""
    out: dict[str, object] = {}

    def bind(target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
            out[target.id] = value.value
        elif isinstance(target, ast.Name) and isinstance(value, ast.Dict):
            out[target.id] = [k.value for k in value.keys if isinstance(k, ast.Constant)]
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            for t, v in zip(target.elts, value.elts, strict=False):
                bind(t, v)

    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                bind(target, node.value)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and item.value is not None:
                    bind(ast.Name(id="cls." + ast.unparse(item.target)), item.value)
    return out


def _literal(node: ast.expr, consts: dict[str, object] | None = None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    value = (consts or {}).get(ast.unparse(node))
    return value if isinstance(value, str) else None


def _loop_names(node: ast.AST, name: str, parents: dict[ast.AST, ast.AST], consts: dict[str, object]) -> list[str]:
    """The names a loop variable takes when the loop walks a module dict of names (``for name, _ in RETIRED.items()``)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.For):
            first = node.target.elts[0] if isinstance(node.target, ast.Tuple) else node.target
            it = node.iter.func.value if isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Attribute) \
                else node.iter
            keys = consts.get(ast.unparse(it))
            if isinstance(first, ast.Name) and first.id == name and isinstance(keys, list):
                return [k for k in keys if isinstance(k, str)]
    return []


def _pattern(node: ast.expr) -> str | None:
    """An f-string's name as a regex: its literal parts, each placeholder a word."""
    if not isinstance(node, ast.JoinedStr):
        return None
    return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in node.values)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def reads(paths: list[Path] | None = None) -> list[Read]:
    files = paths if paths is not None else [
        *sorted((ROOT / "shared").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py")), ROOT / "function_app.py"]
    found: list[Read] = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        tree = ast.parse(source)
        consts = _constants(tree)
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            at = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                func = node.func
                fname = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if fname in READERS and len(node.args) >= 2 and (name := _literal(node.args[1], consts)):
                    i = READERS[fname]
                    if len(node.args) > i and isinstance(node.args[i], ast.Constant):
                        found.append(Read(name, _shown(node.args[i].value), False, at))
                    elif len(node.args) > i:  # a class attribute (``cls.arm_endpoint``), else computed
                        found.append(Read(name, _literal(node.args[i], consts), False, at))
                    else:
                        found.append(Read(name, "{}" if fname == "_json_object" else None, fname != "_json_object", at))
                elif isinstance(func, ast.Attribute) and func.attr == "get" and _is_env(func.value) and node.args:
                    arg = node.args[0]
                    default = _literal(node.args[1]) if len(node.args) > 1 else None
                    if name := _literal(arg, consts):
                        found.append(Read(name, default or None, False, at))
                    elif pat := _pattern(arg):
                        found.append(Read(pat, None, False, at, pattern=True))
                    elif isinstance(arg, ast.Name):
                        found += [Read(n, None, False, at) for n in _loop_names(node, arg.id, parents, consts)]
                elif isinstance(func, ast.Attribute) and func.attr == "setting" and node.args and (
                        name := _literal(node.args[0], consts)):
                    # the CLI's ``run.setting(NAME) or DEFAULT``
                    parent = parents.get(node)
                    default = (_literal(parent.values[1], consts) if isinstance(parent, ast.BoolOp)
                               and isinstance(parent.op, ast.Or) and parent.values[0] is node else None)
                    found.append(Read(name, default or None, False, at))
            elif isinstance(node, ast.Subscript) and _is_env(node.value) and (name := _literal(node.slice, consts)):
                found.append(Read(name, None, False, at))  # guarded by ``in`` where optional
            elif (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In)
                  and _is_env(node.comparators[0]) and (name := _literal(node.left, consts))):
                found.append(Read(name, None, False, at))
        if path.parent.name == "functions":
            for m in BINDING.finditer(source):
                found.append(Read(m.group(1), None, True, f"{rel}:{source.count(chr(10), 0, m.start()) + 1}"))
    return found
