"""The shape of a resource's body, whatever the source: objects with named fields (read-only or not),
dictionaries, lists, scalars, and polymorphic objects picked by a discriminator value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Scalar:
    pass


@dataclass(frozen=True)
class AnyValue:
    """Free-form JSON (``object``): nothing below it can be checked."""


@dataclass(frozen=True)
class DictOf:
    value: TypeRef


@dataclass(frozen=True)
class ListOf:
    item: TypeRef


@dataclass(frozen=True)
class Field:
    type: TypeRef
    readonly: bool = False


@dataclass
class Shape:
    """An object: its fields by JSON name; ``open`` takes any other key too. A polymorphic object names its
    discriminator (a field) and, by its value, the shape of each variant (built when first asked for)."""

    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    open: bool = False
    discriminator: str | None = None
    variants: dict[str, Callable[[], Shape]] = field(default_factory=dict)


@dataclass(frozen=True)
class Lazy:
    """A named object type, built when first needed (schemas are recursive)."""

    name: str
    build: Callable[[], Shape] = field(compare=False, repr=False)


TypeRef = Scalar | AnyValue | DictOf | ListOf | Shape | Lazy


def resolve(t: TypeRef) -> TypeRef:
    return t.build() if isinstance(t, Lazy) else t


@dataclass(frozen=True)
class Body:
    """What one PUT of a resource type takes: ``name`` is the literal last segment of its path
    ('appsettings' for Microsoft.Web/sites/config), None when any name goes."""

    name: str | None
    shape: Lazy
    source: str  # where the schema was read, for messages


class Schemas(Protocol):
    """A source of resource provider schemas."""

    def describe(self) -> str: ...

    def covers(self, namespace: str) -> bool: ...

    def versions(self, resource_type: str) -> set[str]:
        """Every api-version the source knows for the type (case-insensitive); empty: unknown type."""
        ...

    def bodies(self, resource_type: str, api_version: str) -> list[Body]: ...
