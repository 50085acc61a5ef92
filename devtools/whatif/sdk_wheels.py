"""Resource provider schemas read from Azure SDK for Python wheels (azure-mgmt-*), without installing them:
the SDK is generated from the same REST specs ARM validates against, one folder per api-version, and keeps
for every operation its URL template and api-version, and for every model its JSON keys (``_attribute_map``),
read-only fields (``_validation``) and polymorphic variants (``_subtype_map``).

A resource type at an api-version exists when some wheel has a request to a path of that type with that
api-version; what a deployment may set is the body of its PUT. Read as text and with ``ast``, never
imported: several api-versions of one package sit side by side, older than the app's own SDKs."""

from __future__ import annotations

import ast
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from devtools.whatif.schema import AnyValue, Body, DictOf, Field, Lazy, ListOf, Scalar, Shape, TypeRef

_SCALARS = {"str", "bool", "int", "long", "float", "decimal", "iso-8601", "rfc-1123", "unix-time", "date",
            "time", "duration", "bytearray", "base64", "object-id"}
_TOP = re.compile(r"^(?=def |class )", re.M)
_METHOD = re.compile(r"^(?=    def )", re.M)
_BUILDER = re.compile(r"def (build_\w+)\(")
_API_VERSION = re.compile(r'"api-version", "([^"]+)"')
_URL = re.compile(r'"template_url",\s*"([^"]+)"')
_HTTP_METHOD = re.compile(r'HttpRequest\(method="(\w+)"')
_BODY = re.compile(r'_serialize\.body\(\s*\w+,\s*"(\w+)"')
_CALLS = re.compile(r"\b(build_\w+)\(")
_RESOURCE_GROUP = re.compile(r"/subscriptions/\{[^}/]+\}/resource[gG]roups/\{[^}/]+\}")


def arm_type(url: str) -> tuple[str, str | None] | None:
    """(resource type, literal name or None) of a resource's URL template; None for collections and actions.
    The type comes after the last ``/providers/``; resource groups have none."""
    if _RESOURCE_GROUP.fullmatch(url):
        return "Microsoft.Resources/resourceGroups", None
    at = url.rfind("/providers/")
    if at < 0:
        return None
    namespace, *segments = url[at + len("/providers/"):].split("/")
    if not segments or len(segments) % 2 or any("{" in s for s in segments[0::2]) or "{" in namespace:
        return None
    name = segments[-1]
    return "/".join([namespace, *segments[0::2]]), (None if "{" in name else name)


@dataclass(frozen=True)
class _Request:
    resource_type: str
    name: str | None
    api_version: str
    method: str
    body: str | None  # model name
    models: str  # the models module beside the operations
    wheel: Path


@dataclass(frozen=True)
class _Class:
    bases: tuple[str, ...]
    attribute_map: dict | None
    validation: dict | None
    subtype_map: dict | None


def _split_key(key: str) -> list[str]:
    return [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", key)]


class SdkWheels:
    """Schemas from azure-mgmt-* wheels (downloaded by ``make setup``, never installed)."""

    # A wheel may lack what ARM has: what to do when the Bicep is right.
    remedy = ("; if it does exist, pin an azure-mgmt-* release that carries it in devtools/whatif/sdk-wheels.txt, "
              "or name it, with why, in devtools/whatif/accepted.py UNVERIFIABLE")

    def __init__(self, wheels: list[Path]):
        self.wheels = wheels
        self._requests: list[_Request] = []
        for wheel in wheels:
            self._requests += _requests(wheel)
        self._by_type: dict[str, list[_Request]] = defaultdict(list)
        for r in self._requests:
            self._by_type[r.resource_type.lower()].append(r)
        self._namespaces = {r.resource_type.split("/")[0].lower() for r in self._requests}

    def describe(self) -> str:
        return "SDK wheels: " + ", ".join(w.name.split("-py")[0] for w in self.wheels)

    def covers(self, namespace: str) -> bool:
        return namespace.lower() in self._namespaces

    def versions(self, resource_type: str) -> set[str]:
        return {r.api_version for r in self._by_type.get(resource_type.lower(), [])}

    def bodies(self, resource_type: str, api_version: str) -> list[Body]:
        found = {}
        for r in self._by_type.get(resource_type.lower(), []):
            if r.api_version == api_version and r.method == "PUT" and r.body:
                source = f"{r.wheel.name.split('-py')[0]} {r.models.rsplit('/models/', 1)[0]} {r.body}"
                found[(r.name, r.body, r.models)] = Body(r.name, _lazy(r.wheel, r.models, r.body), source)
        return list(found.values())


@cache
def _requests(wheel: Path) -> list[_Request]:
    found = []
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            folder, _, file = member.rpartition("/")
            if not folder.endswith("/operations") or "/aio/" in member or not file.endswith(".py"):
                continue
            models = _models_module(z, folder.rsplit("/", 1)[0] + "/models")
            found += _parse_operations(z.read(member).decode("utf-8"), models, wheel)
    return found


def _models_module(z: zipfile.ZipFile, folder: str) -> str:
    names = set(z.namelist())
    return next((f"{folder}/{m}" for m in ("_models_py3.py", "_models.py") if f"{folder}/{m}" in names), "")


def _parse_operations(text: str, models: str, wheel: Path) -> list[_Request]:
    builders, bodies = {}, {}
    for chunk in _TOP.split(text):
        if chunk.startswith("def ") and (b := _BUILDER.match(chunk)):
            url, version, method = _URL.search(chunk), _API_VERSION.search(chunk), _HTTP_METHOD.search(chunk)
            if url and version and method:
                builders[b.group(1)] = (url.group(1), version.group(1), method.group(1))
        elif chunk.startswith("class "):
            for method_text in _METHOD.split(chunk):
                if body := _BODY.search(method_text):
                    for call in _CALLS.findall(method_text):
                        bodies[call] = body.group(1)
    found = []
    for name, (url, version, method) in builders.items():
        if typed := arm_type(url):
            found.append(_Request(typed[0], typed[1], version, method, bodies.get(name), models, wheel))
    return found


@cache
def _classes(wheel: Path, module: str) -> dict[str, _Class]:
    with zipfile.ZipFile(wheel) as z:
        tree = ast.parse(z.read(module).decode("utf-8"))
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign):
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
                if isinstance(target, ast.Name) and target.id in ("_attribute_map", "_validation", "_subtype_map"):
                    attrs[target.id] = ast.literal_eval(stmt.value)
        bases = tuple(b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases)
        found[node.name] = _Class(bases, attrs.get("_attribute_map"), attrs.get("_validation"),
                                  attrs.get("_subtype_map"))
    return found


def _inherited(classes: dict[str, _Class], name: str, attribute: str) -> dict:
    seen = name
    while seen in classes:
        value = getattr(classes[seen], attribute)
        if value is not None:
            return value
        seen = next((b for b in classes[seen].bases if b in classes), "")
    return {}


def _lazy(wheel: Path, module: str, model: str) -> Lazy:
    return Lazy(model, lambda: _shape(wheel, module, model))


def _type(wheel: Path, module: str, t: str) -> TypeRef:
    if t.startswith("[") and t.endswith("]"):
        return ListOf(_type(wheel, module, t[1:-1]))
    if t.startswith("{") and t.endswith("}"):
        return DictOf(_type(wheel, module, t[1:-1]))
    if t == "object":
        return AnyValue()
    if t in _SCALARS or t not in _classes(wheel, module):
        return Scalar()  # enums are "str"; an unknown name is a serializer type, not a model
    return _lazy(wheel, module, t)


@cache
def _shape(wheel: Path, module: str, model: str) -> Shape:
    classes = _classes(wheel, module)
    attribute_map = _inherited(classes, model, "attribute_map")
    validation = _inherited(classes, model, "validation")
    shape = Shape(model)
    for attr, spec in attribute_map.items():
        if spec["key"] == "":
            shape.open = True  # additional_properties
            continue
        *parents, last = _split_key(spec["key"])
        node = shape
        for p in parents:  # a flattened key: properties.siteConfig
            if p not in node.fields:
                node.fields[p] = Field(Shape(f"{node.name}.{p}"))
            node = node.fields[p].type
        node.fields[last] = Field(_type(wheel, module, spec["type"]), bool(validation.get(attr, {}).get("readonly")))
    own = classes[model].subtype_map if model in classes else None
    for attr, variants in (own or {}).items():
        shape.discriminator = attribute_map[attr]["key"]
        shape.variants = {value: (lambda sub=sub: _shape(wheel, module, sub)) for value, sub in variants.items()}
    return shape
