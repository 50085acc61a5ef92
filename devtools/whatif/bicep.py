"""What a Bicep file declares, read with tree-sitter-bicep (offline: there is no Bicep compiler here):
every ``resource`` (its type, api-version, whether it is ``existing``, and the value it sets, as plain data)
and every ``module`` (its source). Values are kept only as far as they can be known without deploying:
object and array literals, string literals, both branches of ``?:``, each argument of ``union()``, the
body of a ``for``, and variables of the same file resolved to their value; anything else (a parameter, a
module output, a function call) is an ``Expr``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter
import tree_sitter_bicep

# Bicep's own keys on a resource: the language's, never sent to ARM (Bicep docs, "Resource declaration").
LANGUAGE_KEYS = frozenset({"parent", "scope", "dependsOn"})


@dataclass(frozen=True)
class Lit:
    """A literal: string (without interpolation), number, bool or null."""

    value: str | int | bool | None
    line: int


@dataclass(frozen=True)
class Expr:
    """A value that is not known before deployment: its source text."""

    text: str
    line: int


@dataclass(frozen=True)
class Prop:
    key: str | None  # None: a computed key ('${x}')
    value: Value
    line: int


@dataclass(frozen=True)
class Obj:
    props: tuple[Prop, ...]
    line: int

    def get(self, key: str) -> Value | None:
        return next((p.value for p in self.props if p.key == key), None)


@dataclass(frozen=True)
class Arr:
    items: tuple[Value, ...]
    line: int


@dataclass(frozen=True)
class Alt:
    """One of several values (``c ? a : b``), or all of them at once (``union(a, b)``): every one is checked."""

    options: tuple[Value, ...]
    line: int


Value = Lit | Expr | Obj | Arr | Alt


@dataclass(frozen=True)
class Declaration:
    file: str  # as read_folder names it: infra/app/function.bicep
    line: int
    symbol: str
    kind: str  # "resource" or "module"
    reference: str  # 'Microsoft.Web/sites@2024-04-01', or a module's source
    existing: bool = False
    body: Value | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def type(self) -> str:
        return self.reference.rsplit("@", 1)[0]

    @property
    def api_version(self) -> str:
        return self.reference.rsplit("@", 1)[1] if "@" in self.reference else ""

    @property
    def name(self) -> str | None:
        """The resource's name when it is a literal ('appsettings'), else None."""
        found = self.body.get("name") if isinstance(self.body, Obj) else None
        return found.value if isinstance(found, Lit) and isinstance(found.value, str) else None


@dataclass
class _File:
    path: str
    source: bytes
    variables: dict[str, tree_sitter.Node] = field(default_factory=dict)
    resolving: set[str] = field(default_factory=set)

    def text(self, node: tree_sitter.Node) -> str:
        return self.source[node.start_byte:node.end_byte].decode("utf-8")


def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def _line(node: tree_sitter.Node) -> int:
    return node.start_point[0] + 1


def _named(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    return [c for c in node.children if c.is_named and c.type != "comment"]


def _string(f: _File, node: tree_sitter.Node) -> str | None:
    """A string literal's value; None when it interpolates."""
    parts = []
    for c in node.children:
        if c.type == "interpolation":
            return None
        if c.type == "string_content":
            parts.append(f.text(c))
        elif c.type == "escape_sequence":
            parts.append({"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}.get(
                f.text(c), f.text(c)))
    return "".join(parts)


def _value(f: _File, node: tree_sitter.Node) -> Value:
    line = _line(node)
    match node.type:
        case "object":
            props = []
            for p in _named(node):
                if p.type != "object_property":
                    continue  # nested resources are declarations of their own
                key_node, *rest = _named(p)
                if key_node.type == "resource_declaration" or not rest:
                    continue
                key = f.text(key_node) if key_node.type == "identifier" else _string(f, key_node)
                props.append(Prop(key, _value(f, rest[-1]), _line(p)))
            return Obj(tuple(props), line)
        case "array":
            return Arr(tuple(_value(f, c) for c in _named(node) if c.type != "ERROR"), line)
        case "string":
            s = _string(f, node)
            return Expr(f.text(node), line) if s is None else Lit(s, line)
        case "number":
            return Lit(int(f.text(node)), line)
        case "boolean":
            return Lit(f.text(node) == "true", line)
        case "null":
            return Lit(None, line)
        case "parenthesized_expression":
            return _value(f, _named(node)[0])
        case "ternary_expression":
            return Alt((_value(f, node.child_by_field_name("consequence")),
                        _value(f, node.child_by_field_name("alternative"))), line)
        case "for_statement":
            return Arr((_value(f, node.child_by_field_name("body") or _named(node)[-1]),), line)
        case "if_statement":
            return _value(f, _named(node)[-1])
        case "call_expression" if f.text(node.child_by_field_name("function")) == "union":
            return Alt(tuple(_value(f, a) for a in _named(node.child_by_field_name("arguments"))), line)
        case "identifier" if f.text(node) in f.variables and f.text(node) not in f.resolving:
            name = f.text(node)
            f.resolving.add(name)
            try:
                return _value(f, f.variables[name])
            finally:
                f.resolving.discard(name)
    return Expr(f.text(node), line)


def _declarations(f: _File, node: tree_sitter.Node, parent_type: str | None = None) -> list[Declaration]:
    found = []
    for child in _named(node):
        if child.type == "object_property":
            found += _declarations(f, child, parent_type)
        if child.type not in ("resource_declaration", "module_declaration"):
            continue
        symbol, reference, *rest = _named(child)
        ref = _string(f, reference) or f.text(reference)
        if parent_type and child.type == "resource_declaration" and "/" not in ref.split("@")[0]:
            ref = f"{parent_type}/{ref}"  # a nested resource's type is relative to its parent's
        inner = rest[-1] if rest else None  # a loop's or a condition's body is one copy's body
        while inner is not None and inner.type in ("for_statement", "if_statement"):
            inner = inner.child_by_field_name("body") or _named(inner)[-1]
        existing = any(c.type == "existing" for c in child.children)
        decl = Declaration(f.path, _line(child), f.text(symbol),
                           "resource" if child.type == "resource_declaration" else "module", ref, existing,
                           _value(f, inner) if inner is not None else None)
        found.append(decl)
        if inner is not None and inner.type == "object" and decl.kind == "resource":
            found += _declarations(f, inner, decl.type)
    return found


def read(source: bytes, path: str = "<bicep>") -> list[Declaration]:
    """The resources and modules one Bicep file declares; a file that doesn't parse is refused (what a
    syntax error hides would go unchecked)."""
    tree = _parser().parse(source)
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            raise ValueError(f"{path}:{_line(node)}: Bicep syntax error near "
                             f"{source[node.start_byte:node.end_byte][:40].decode(errors='replace')!r}")
        stack.extend(node.children)
    f = _File(path, source)
    for node in _named(tree.root_node):
        if node.type == "variable_declaration":
            name, *rest = _named(node)
            f.variables[f.text(name)] = rest[-1]
    return _declarations(f, tree.root_node)


def read_folder(folder: Path) -> list[Declaration]:
    """Every declaration of every .bicep file under ``folder``, files in name order, named from the folder
    (infra/app/function.bicep)."""
    found = []
    for path in sorted(folder.rglob("*.bicep")):
        found += read(path.read_bytes(), path.relative_to(folder.parent).as_posix())
    return found
