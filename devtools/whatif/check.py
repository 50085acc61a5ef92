"""The what-if-style dry check: every resource the Bicep declares names a type and api-version the schemas
know, and every property it sets is in that api-version's PUT body, spelled as the schema spells it and not
read-only. What can't be known offline is listed apart (``Unchecked``), never passed over in silence."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from devtools.whatif.bicep import LANGUAGE_KEYS, Alt, Arr, Declaration, Expr, Lit, Obj, Value
from devtools.whatif.schema import AnyValue, DictOf, Field, ListOf, Scalar, Schemas, Shape, TypeRef, resolve

REGISTRY_PREFIXES = ("br/", "br:", "ts/", "ts:")


@dataclass(frozen=True)
class Finding:
    """Something ARM would reject or ignore."""

    where: str
    resource: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where} {self.resource}: {self.path + ': ' if self.path else ''}{self.problem}"


@dataclass(frozen=True)
class Unchecked:
    """Something this check cannot judge offline, and why."""

    where: str
    resource: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where} {self.resource}: {self.path + ': ' if self.path else ''}{self.reason}"


@dataclass
class Report:
    findings: list[Finding]
    unchecked: list[Unchecked]
    checked: list[Declaration]  # type and api-version found
    properties: list[str] = field(default_factory=list)  # 'file:line symbol path' of every property found


def _structured(t: TypeRef) -> bool:
    t = resolve(t)
    if isinstance(t, DictOf):
        return _structured(t.value)
    if isinstance(t, ListOf):
        return _structured(t.item)
    return isinstance(t, Shape)


def _fields(shape: Shape, obj: Obj, report, at: str) -> tuple[dict, bool]:
    """The fields an object of this shape may set, its variant picked by the discriminator the object sets
    (every variant's fields when the discriminator is not a literal). Also: whether any key goes."""
    fields, open_ = dict(shape.fields), shape.open
    if shape.variants and shape.discriminator:
        value = obj.get(shape.discriminator)
        if isinstance(value, Lit) and isinstance(value.value, str):
            if value.value not in shape.variants:
                report(f"{at}{shape.discriminator}", f"'{value.value}' is not one of "
                       f"{', '.join(sorted(shape.variants))} ({shape.name})")
                return fields, True
            variants = [value.value]
        else:
            variants = list(shape.variants)
        for v in variants:
            more, more_open = _fields(shape.variants[v](), obj, report, at)
            fields.update(more)
            open_ = open_ or more_open
    return fields, open_


class _Walk:
    def __init__(self, decl: Declaration, report: Report, spec_gaps: dict[tuple[str, str], str]):
        self.decl, self.findings, self.unchecked, self.properties = decl, report.findings, report.unchecked, \
            report.properties
        self.resource = f"{decl.symbol} ({decl.reference})"
        self.gaps = {path: why for (t, path), why in spec_gaps.items() if t.lower() == decl.type.lower()}

    def finding(self, path: str, problem: str, line: int) -> None:
        where = f"{self.decl.file}:{line}"
        if path in self.gaps:  # the spec is wrong, not the Bicep
            self.unchecked.append(Unchecked(where, self.resource, path, f"{problem}; accepted: {self.gaps[path]}"))
        else:
            self.findings.append(Finding(where, self.resource, path, problem))

    def value(self, v: Value, t: TypeRef, path: str, top: bool = False) -> None:
        t = resolve(t)
        if isinstance(v, Alt):
            for option in v.options:
                self.value(option, t, path, top)
            return
        if isinstance(t, Scalar | AnyValue):
            return  # values are not judged, only where they go
        if isinstance(v, Expr):
            if _structured(t):
                self.unchecked.append(Unchecked(f"{self.decl.file}:{v.line}", self.resource, path,
                                                f"set from `{v.text[:60]}`, not known before deployment"))
            return
        if isinstance(t, ListOf) and isinstance(v, Arr):
            for item in v.items:
                self.value(item, t.item, f"{path}[]")
        elif isinstance(t, DictOf) and isinstance(v, Obj):
            for p in v.props:
                self.value(p.value, t.value, f"{path}.{p.key if p.key is not None else '*'}")
        elif isinstance(t, Shape) and isinstance(v, Obj):
            self.object(v, t, path, top)

    def object(self, obj: Obj, shape: Shape, path: str, top: bool) -> None:
        at = f"{path}." if path else ""
        fields, open_ = _fields(shape, obj, lambda p, msg: self.finding(p, msg, obj.line), at)
        lower = {k.lower(): k for k in fields}
        for p in obj.props:
            if top and (p.key in LANGUAGE_KEYS or p.key == "name"):
                continue  # Bicep's own keys; the name goes into the URL
            if p.key is None:
                if not open_:
                    self.unchecked.append(Unchecked(f"{self.decl.file}:{p.line}", self.resource, f"{at}*",
                                                    "a computed key in an object with named fields"))
                continue
            here = f"{at}{p.key}"
            f = fields.get(p.key)
            if f is None:
                if p.key.lower() in lower:
                    self.finding(here, f"spelled '{lower[p.key.lower()]}' in the schema ({shape.name})", p.line)
                elif not open_:
                    close = difflib.get_close_matches(p.key, fields, n=1)
                    hint = f"did you mean '{close[0]}'?" if close else f"it has: {', '.join(sorted(fields)) or 'nothing'}"
                    self.finding(here, f"not in the schema of {shape.name}; {hint}", p.line)
                continue
            if f.readonly:
                self.finding(here, f"read-only in {shape.name}: ARM ignores it", p.line)
                continue
            self.properties.append(f"{self.decl.file}:{p.line} {self.decl.symbol} {here}")
            self.value(p.value, f.type, here)


def merge(shapes: list[Shape]) -> Shape:
    """One shape taking what any of them takes: a type deployed by several PUTs (an extension resource at a
    subscription or at a resource), when the Bicep doesn't say which."""
    if len(shapes) == 1:
        return shapes[0]
    merged = Shape(" | ".join(dict.fromkeys(s.name for s in shapes)), open=any(s.open for s in shapes))
    for s in shapes:
        for key, f in s.fields.items():
            have = merged.fields.get(key)
            if have is None:
                merged.fields[key] = f
            elif isinstance(resolve(have.type), Shape) and isinstance(resolve(f.type), Shape):
                merged.fields[key] = Field(merge([resolve(have.type), resolve(f.type)]), have.readonly and f.readonly)
            else:
                merged.fields[key] = Field(have.type, have.readonly and f.readonly)
        if s.variants and not merged.variants:
            merged.discriminator, merged.variants = s.discriminator, s.variants
    return merged


def check(declarations: Iterable[Declaration], schemas: Schemas, unverifiable: dict[str, str] | None = None,
          spec_gaps: dict[tuple[str, str], str] | None = None) -> Report:
    """Check every declaration. ``unverifiable`` maps 'Type@version' to why the schemas can't have it;
    ``spec_gaps`` maps (type, property path) to why ARM needs what the spec lacks. Both are listed as
    unchecked, with their reason, instead of failing."""
    unverifiable, spec_gaps = unverifiable or {}, spec_gaps or {}
    report = Report([], [], [])
    findings, unchecked, checked = report.findings, report.unchecked, report.checked
    for d in declarations:
        resource = f"{d.symbol} ({d.reference})"
        if d.kind == "module":
            if d.reference.startswith(REGISTRY_PREFIXES):
                unchecked.append(Unchecked(d.where, f"module {d.symbol}", "", f"{d.reference}: a registry module; "
                                           "the resources it deploys are in the published module, not here"))
            continue  # a local module's resources are checked in its own file
        if d.reference in unverifiable:
            unchecked.append(Unchecked(d.where, resource, "", unverifiable[d.reference]))
            continue
        namespace, remedy = d.type.split("/")[0], getattr(schemas, "remedy", "")
        if not schemas.covers(namespace):
            findings.append(Finding(d.where, resource, "", f"no schema for the provider {namespace} in "
                                    f"{schemas.describe()}{remedy}"))
            continue
        versions = schemas.versions(d.type)
        if not versions:
            findings.append(Finding(d.where, resource, "", f"the type {d.type} is unknown to {namespace}{remedy}"))
            continue
        if d.api_version not in versions:
            findings.append(Finding(d.where, resource, "", f"api-version {d.api_version} of {d.type} is unknown "
                                    f"(known: {', '.join(sorted(versions)[-8:])}){remedy}"))
            continue
        checked.append(d)
        if d.existing or d.body is None:
            continue  # an existing resource is only read: its type and api-version are all that matter
        bodies = schemas.bodies(d.type, d.api_version)
        if d.name is not None and any(b.name for b in bodies):
            named = [b for b in bodies if b.name is None or b.name.lower() == d.name.lower()]
            if not named:
                findings.append(Finding(d.where, resource, "name", f"'{d.name}' is not one of "
                                        f"{', '.join(sorted(b.name for b in bodies if b.name))}"))
                continue
            bodies = named
        if not bodies:
            findings.append(Finding(d.where, resource, "", f"{d.type} has no PUT at {d.api_version}: it can't be "
                                    "deployed"))
            continue
        _Walk(d, report, spec_gaps).value(d.body, merge([resolve(b.shape) for b in bodies]), "", top=True)
    return report
