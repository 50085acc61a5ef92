"""Who is calling and where they may write to (the restore and failover APIs, the settings that bound them). Pure.

The function key is checked by the Functions host before a handler runs. Behind it, App Service
authentication (Microsoft Entra ID) validates the caller's token and hands the app the principal as
``X-MS-CLIENT-PRINCIPAL``: base64 JSON ``{"auth_typ", "name_typ", "role_typ", "claims": [{"typ", "val"}]}``.
App roles arrive as ``roles`` claims, or under the claim type the principal names in ``role_typ``
(``http://schemas.microsoft.com/ws/2008/06/identity/claims/role``): both are read.

Every resource id in a request is parsed strictly (one shape per kind, names in ARM's alphabet, a GUID
subscription: no ``..``, no query, no encoded characters) and checked against the allow-list of
target scopes (``VMKEEPER_RESTORE_SCOPES``: subscriptions and resource groups).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

READER = "Restore.Reader"
OPERATOR = "Restore.Operator"
FAILOVER = "Failover.Operator"  # Site Recovery failovers (shared/failover/api.py): granted by no Restore role
ROLE_CLAIMS = ("roles", "role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid", "sub")
NAME_CLAIMS = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
MAX_PRINCIPAL = 16384  # bytes of the header: App Service's own are a few KB


class NotAuthenticated(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    roles: frozenset[str]

    def can_read(self) -> bool:
        return bool(self.roles & {READER, OPERATOR})

    def can_restore(self) -> bool:
        return OPERATOR in self.roles

    def can_fail_over(self) -> bool:
        """Only the role itself: a failover moves production to another region, which no Restore role implies."""
        return FAILOVER in self.roles

    def can_read_failovers(self) -> bool:
        return bool(self.roles & {READER, OPERATOR, FAILOVER})


def principal(header: str | None) -> Principal:
    """The caller from ``X-MS-CLIENT-PRINCIPAL``; NotAuthenticated when absent or unreadable."""
    if not header:
        raise NotAuthenticated("X-MS-CLIENT-PRINCIPAL: absent (App Service authentication passes the caller)")
    if len(header) > MAX_PRINCIPAL:
        raise NotAuthenticated("X-MS-CLIENT-PRINCIPAL: too large")
    try:
        raw = base64.b64decode(header.strip() + "=" * (-len(header.strip()) % 4), validate=True)
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # nesting deeper than the stack
        raise NotAuthenticated("X-MS-CLIENT-PRINCIPAL: not base64 JSON") from None
    try:  # a lone surrogate ("\ud800") is valid JSON but no text: it could be neither hashed nor stored
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise NotAuthenticated("X-MS-CLIENT-PRINCIPAL: not valid Unicode text (a lone surrogate)") from None
    claims = doc.get("claims") if isinstance(doc, dict) else None
    if not isinstance(claims, list):
        raise NotAuthenticated("X-MS-CLIENT-PRINCIPAL.claims: required")
    role_types = {t.lower() for t in ROLE_CLAIMS}
    if isinstance(doc.get("role_typ"), str):
        role_types.add(doc["role_typ"].lower())
    found: dict[str, list[str]] = {}
    for claim in claims:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str) and isinstance(claim.get("val"), str):
            found.setdefault(claim["typ"].lower(), []).append(claim["val"])
    roles = frozenset(v for t in role_types for v in found.get(t, []))
    who = next((found[t.lower()][0] for t in ID_CLAIMS if found.get(t.lower())), "")
    if not who:
        raise NotAuthenticated("X-MS-CLIENT-PRINCIPAL: no object id claim")
    name = next((found[t.lower()][0] for t in NAME_CLAIMS if found.get(t.lower())), who)
    return Principal(who, name, roles)


def encode_principal(object_id: str, roles: list[str], *, name: str = "", role_claim: str = "roles",
                     role_typ: str = ROLE_CLAIMS[2]) -> str:
    """The header as App Service writes it (local tools and tests)."""
    claims = [{"typ": ID_CLAIMS[0], "val": object_id}] + ([{"typ": "name", "val": name}] if name else [])
    claims += [{"typ": role_claim, "val": r} for r in roles]
    doc = {"auth_typ": "aad", "name_typ": NAME_CLAIMS[2], "role_typ": role_typ, "claims": claims}
    return base64.b64encode(json.dumps(doc).encode()).decode()


# --- resource ids ------------------------------------------------------------------------------------
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GROUP = r"[-\w._()]{0,89}[-\w_()]"  # ARM: 1-90, letters, digits, _ - . ( ), not ending in '.'
_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?"
_BASE = rf"/subscriptions/(?P<subscription>{_GUID})/resourceGroups/(?P<group>{_GROUP})"
SHAPES = {
    "resource_group": rf"{_BASE}",
    "vm": rf"{_BASE}/providers/Microsoft\.Compute/virtualMachines/(?P<name>{_NAME})",
    "scale_set": rf"{_BASE}/providers/Microsoft\.Compute/virtualMachineScaleSets/(?P<name>{_NAME})",
    "subnet": rf"{_BASE}/providers/Microsoft\.Network/virtualNetworks/(?P<vnet>{_NAME})/subnets/(?P<name>{_NAME})",
    "storage_account": rf"{_BASE}/providers/Microsoft\.Storage/storageAccounts/(?P<name>[a-z0-9]{{3,24}})",
    "restore_point": rf"{_BASE}/providers/Microsoft\.Compute/restorePointCollections/(?P<collection>{_NAME})"
                     rf"/restorePoints/(?P<name>{_NAME})",
    "vault_point": rf"{_BASE}/providers/Microsoft\.RecoveryServices/vaults/(?P<vault>{_NAME})/backupFabrics/Azure"
                   rf"/protectionContainers/(?P<container>[A-Za-z0-9_.;()-]{{1,260}})"
                   rf"/protectedItems/(?P<item>[A-Za-z0-9_.;()-]{{1,260}})/recoveryPoints/(?P<name>[0-9A-Za-z_-]{{1,80}})",
}
# ASCII only: without re.ASCII, ``\w`` takes any Unicode letter and IGNORECASE folds 'ſ' (U+017F) to 's'
# and 'K' (KELVIN SIGN) to 'k', so look-alike names passed, and a group "prod-K" (Kelvin) lower-cased to an
# allowed "prod-k" in Scopes.allows while ARM would write to another group.
_COMPILED = {k: re.compile(v, re.IGNORECASE | re.ASCII) for k, v in SHAPES.items()}


class BadId(ValueError):
    pass


@dataclass(frozen=True)
class ParsedId:
    id: str
    kind: str
    subscription: str
    group: str
    name: str
    parts: dict[str, str]

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"


def parse_id(value: object, kind: str) -> ParsedId:
    """The id, if it is exactly a ``kind`` id; BadId (its message says what is wrong) otherwise."""
    what = kind.replace("_", " ")
    if not isinstance(value, str) or not value:
        raise BadId(f"must be a {what} id")
    match = _COMPILED[kind].fullmatch(value)
    if match is None:
        raise BadId(f"'{value[:300]}' is not a {what} id ({_example(kind)})")
    parts = match.groupdict()
    return ParsedId(value, kind, parts["subscription"].lower(), parts["group"], parts.get("name") or parts["group"],
                    parts)


def _example(kind: str) -> str:
    return {"resource_group": "/subscriptions/{guid}/resourceGroups/{name}",
            "vm": "/subscriptions/{guid}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}",
            "scale_set": "…/providers/Microsoft.Compute/virtualMachineScaleSets/{name}",
            "subnet": "…/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}",
            "storage_account": "…/providers/Microsoft.Storage/storageAccounts/{name}",
            "restore_point": "…/restorePointCollections/{collection}/restorePoints/{name}",
            "vault_point": "…/vaults/{vault}/backupFabrics/Azure/protectionContainers/…/recoveryPoints/{name}"}[kind]


@dataclass(frozen=True)
class Scopes:
    """The allow-list of target scopes: subscriptions (every group in them) and resource groups."""

    subscriptions: frozenset[str]
    groups: frozenset[tuple[str, str]]

    @classmethod
    def parse(cls, text: str) -> Scopes:
        subs, groups = set(), set()
        for entry in (e.strip() for e in text.replace(";", ",").split(",")):
            if not entry:
                continue
            sub = re.fullmatch(rf"/subscriptions/({_GUID})/?", entry, re.IGNORECASE | re.ASCII)
            if sub:
                subs.add(sub.group(1).lower())
                continue
            try:
                parsed = parse_id(entry.rstrip("/"), "resource_group")
            except BadId:
                raise ValueError(f"VMKEEPER_RESTORE_SCOPES: '{entry}' is neither /subscriptions/{{id}} nor a "
                                 "resource group id") from None
            groups.add((parsed.subscription, parsed.group.lower()))
        return cls(frozenset(subs), frozenset(groups))

    def allows(self, parsed: ParsedId) -> bool:
        return parsed.subscription in self.subscriptions or (parsed.subscription, parsed.group.lower()) in self.groups

    def __bool__(self) -> bool:
        return bool(self.subscriptions or self.groups)
