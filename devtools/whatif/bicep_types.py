"""Resource provider schemas from a checkout of Azure/bicep-types-az (the type index the Bicep compiler itself
checks against): ``generated/<rp>/<namespace>/<api-version>/types.json``. Optional: for a developer who has
that checkout (``python -m devtools.whatif --bicep-types PATH``); the tests use the SDK wheels."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

from devtools.whatif.schema import AnyValue, Body, DictOf, Field, Lazy, ListOf, Scalar, Shape, TypeRef

_READ_ONLY = 2  # bicep-types' ObjectTypePropertyFlags.ReadOnly
_SCALARS = {"StringType", "StringLiteralType", "IntegerType", "BooleanType", "NullType"}


class BicepTypes:
    def __init__(self, root: Path):
        generated = root / "generated" if (root / "generated").is_dir() else root
        self.root = generated
        self._files: dict[str, list[Path]] = defaultdict(list)  # namespace (lower) -> types.json files
        for path in generated.glob("*/*/*/types.json"):
            self._files[path.parent.parent.name.lower()].append(path)

    def describe(self) -> str:
        return f"bicep-types-az at {self.root}"

    def covers(self, namespace: str) -> bool:
        return namespace.lower() in self._files

    def versions(self, resource_type: str) -> set[str]:
        pattern = re.compile(rf'"name": "{re.escape(resource_type)}@([^"]+)"', re.I)
        found = set()
        for path in self._files.get(resource_type.split("/")[0].lower(), []):
            found |= set(pattern.findall(_text(path)))
        return found

    def bodies(self, resource_type: str, api_version: str) -> list[Body]:
        want = f"{resource_type}@{api_version}".lower()
        found = []
        for path in self._files.get(resource_type.split("/")[0].lower(), []):
            if path.parent.name != api_version:
                continue
            types = _types(path)
            for i, t in enumerate(types):
                if t.get("$type") == "ResourceType" and t["name"].lower() == want:
                    ref = _index(t["body"])
                    body = _type(path, ref)
                    if isinstance(body, Lazy) and not any(b.shape == body for b in found):
                        found.append(Body(None, body, f"{path.relative_to(self.root)}#/{i}"))
        return found


@cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@cache
def _types(path: Path) -> list[dict]:
    return json.loads(_text(path))


def _index(ref: dict) -> int | None:
    r = ref.get("$ref", "")
    return int(r[2:]) if r.startswith("#/") else None  # a reference into another file: not followed


def _type(path: Path, index: int | None) -> TypeRef:
    if index is None:
        return AnyValue()
    t = _types(path)[index]
    kind = t["$type"]
    if kind in _SCALARS:
        return Scalar()
    if kind == "ArrayType":
        return ListOf(_type(path, _index(t["itemType"])))
    if kind == "UnionType":
        elements = [_type(path, _index(e)) for e in t["elements"]]
        return Scalar() if all(isinstance(e, Scalar) for e in elements) else AnyValue()
    if kind == "ObjectType" and not t.get("properties") and "additionalProperties" in t:
        return DictOf(_type(path, _index(t["additionalProperties"])))
    if kind in ("ObjectType", "DiscriminatedObjectType"):
        return Lazy(t.get("name", f"#{index}"), lambda: _shape(path, index))
    return AnyValue()


@cache
def _shape(path: Path, index: int) -> Shape:
    t = _types(path)[index]
    props = t.get("properties") if t["$type"] == "ObjectType" else t.get("baseProperties")
    shape = Shape(t.get("name", f"#{index}"), open="additionalProperties" in t)
    for key, p in (props or {}).items():
        shape.fields[key] = Field(_type(path, _index(p["type"])), bool(p.get("flags", 0) & _READ_ONLY))
    if t["$type"] == "DiscriminatedObjectType":
        shape.discriminator = t["discriminator"]
        shape.variants = {value: (lambda ref=ref: _shape(path, _index(ref))) for value, ref in t["elements"].items()}
        shape.fields[t["discriminator"]] = Field(Scalar())
    return shape
