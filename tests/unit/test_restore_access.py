"""Who may call the restore API (X-MS-CLIENT-PRINCIPAL, app roles), strict resource ids, the allow-list."""

from __future__ import annotations

import base64
import json

import pytest

from shared.restore import access
from shared.restore.access import (
    OPERATOR,
    READER,
    BadId,
    NotAuthenticated,
    Principal,
    Scopes,
    encode_principal,
    parse_id,
    principal,
)

SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"
OTHER_SUB = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
OID = "11111111-2222-3333-4444-555555555555"
ROLE_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg-prod"


def header(doc: object) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


# --- X-MS-CLIENT-PRINCIPAL -----------------------------------------------------------------------------
def test_roles_as_roles_claims():
    who = principal(header({"auth_typ": "aad", "claims": [
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": OID},
        {"typ": "name", "val": "Ada"},
        {"typ": "roles", "val": READER}, {"typ": "roles", "val": OPERATOR}]}))
    assert who == Principal(OID, "Ada", frozenset({READER, OPERATOR}))


def test_roles_under_the_claim_type_named_by_role_typ():
    who = principal(header({"role_typ": "urn:custom:role", "claims": [
        {"typ": "oid", "val": OID}, {"typ": "urn:custom:role", "val": OPERATOR}]}))
    assert who.roles == {OPERATOR}
    assert who.name == OID  # no name claim: the object id stands in


def test_roles_under_the_standard_role_uri_and_without_padding():
    text = header({"claims": [{"typ": "sub", "val": OID}, {"typ": ROLE_URI, "val": READER}]}).rstrip("=")
    assert principal(text).roles == {READER}


def test_a_role_claim_named_by_role_typ_does_not_count_when_role_typ_names_another():
    who = principal(header({"role_typ": "urn:a", "claims": [{"typ": "oid", "val": OID}, {"typ": "urn:b", "val": OPERATOR}]}))
    assert who.roles == frozenset()


@pytest.mark.parametrize("role_claim", ["roles", ROLE_URI, "urn:custom:role"])
def test_encode_principal_round_trips(role_claim):
    text = encode_principal(OID, [READER, OPERATOR], name="Ada Lovelace", role_claim=role_claim,
                            role_typ="urn:custom:role")
    assert principal(text) == Principal(OID, "Ada Lovelace", frozenset({READER, OPERATOR}))


@pytest.mark.parametrize("value", [
    None, "", "not base64!", base64.b64encode(b"\xff\xfe").decode(), base64.b64encode(b"not json").decode(),
    header([1, 2]), header("claims"), header({}), header({"claims": "oid"}), header({"claims": {"typ": "oid"}}),
    header({"claims": []}),
    header({"claims": [{"typ": "roles", "val": OPERATOR}]}),  # no object id
    header({"claims": [{"typ": "oid", "val": ""}]}),
    header({"claims": [{"typ": "oid", "val": 42}, "junk", None]}),
    header({"claims": [{"typ": "oid", "val": "\ud800"}, {"typ": "roles", "val": OPERATOR}]}),  # a lone surrogate
    header({"claims": [{"typ": "oid", "val": OID}, {"typ": "name", "val": "x\udfff"}]}),
    "A" * (access.MAX_PRINCIPAL + 1),
], ids=lambda v: repr(v)[:40])
def test_absent_or_unreadable_principal_is_not_authenticated(value):
    with pytest.raises(NotAuthenticated):
        principal(value)


@pytest.mark.parametrize(("roles", "read", "restore"), [
    ({READER}, True, False),
    ({OPERATOR}, True, True),
    ({READER, OPERATOR}, True, True),
    (set(), False, False),
    ({"Restore.reader", "Contributor"}, False, False),  # app role values are exact
])
def test_what_each_role_may_do(roles, read, restore):
    who = principal(encode_principal(OID, sorted(roles)))
    assert (who.can_read(), who.can_restore()) == (read, restore)


# --- resource ids ------------------------------------------------------------------------------------
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web-01"
SUBNET = f"{GROUP}/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/default"
STORAGE = f"{GROUP}/providers/Microsoft.Storage/storageAccounts/vmkstaging01"
RESTORE_POINT = f"{GROUP}/providers/Microsoft.Compute/restorePointCollections/vmk-rpc-web/restorePoints/vmk-rp-1"
VAULT_POINT = (f"{GROUP}/providers/Microsoft.RecoveryServices/vaults/vault-we/backupFabrics/Azure/protectionContainers/"
               "IaasVMContainer;iaasvmcontainerv2;rg-prod;web-01/protectedItems/VM;iaasvmcontainerv2;rg-prod;web-01/"
               "recoveryPoints/1234567890123")
CANONICAL = {"resource_group": GROUP, "vm": VM, "subnet": SUBNET, "storage_account": STORAGE,
             "restore_point": RESTORE_POINT, "vault_point": VAULT_POINT}


@pytest.mark.parametrize("kind", list(CANONICAL))
def test_canonical_ids_of_each_kind_are_accepted(kind):
    parsed = parse_id(CANONICAL[kind], kind)
    assert (parsed.id, parsed.kind, parsed.subscription, parsed.group) == (CANONICAL[kind], kind, SUB, "rg-prod")
    assert parsed.group_id == GROUP


def test_parsed_names_and_parts():
    assert parse_id(VM, "vm").name == "web-01"
    assert parse_id(GROUP, "resource_group").name == "rg-prod"
    subnet = parse_id(SUBNET, "subnet")
    assert (subnet.name, subnet.parts["vnet"]) == ("default", "vnet-1")
    point = parse_id(VAULT_POINT, "vault_point")
    assert (point.name, point.parts["vault"]) == ("1234567890123", "vault-we")
    assert point.parts["item"] == "VM;iaasvmcontainerv2;rg-prod;web-01"


def test_ids_are_case_insensitive_and_the_subscription_is_lower_cased():
    parsed = parse_id(VM.upper().replace(SUB.upper(), SUB.upper()), "vm")
    assert parsed.subscription == SUB
    assert parsed.group == "RG-PROD"


@pytest.mark.parametrize("value", [
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/..",
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/../../rg-other/providers/Microsoft.Compute/virtualMachines/x",
    f"/subscriptions/{SUB}/resourceGroups/../providers/Microsoft.Compute/virtualMachines/web",
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/%2e%2e",
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web%2F01",
    f"{GROUP}//providers/Microsoft.Compute/virtualMachines/web",
    f"/subscriptions/{SUB}//resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/web",
    f"{VM}/",
    f"{VM}?api-version=2024-03-01",
    f"{VM}#frag",
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web 01",
    f"{VM}\n",
    f"{VM}\r\nX-Injected: 1",
    f" {VM}",
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/w\u0435b",  # Cyrillic е
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web\uff0e01",  # fullwidth full stop
    "/subscriptions/not-a-guid/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/web",
    f"/subscriptions/{SUB}x/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/web",
    f"{VM}/extensions/x",
    f"{VM}/restorePoints",
    f"{GROUP}/providers/Microsoft.ClassicCompute/virtualMachines/web",
    f"{GROUP}/providers/Microsoft.Compute/disks/web",
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web-",  # ends in '-'
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web.",
    f"{GROUP}/providers/Microsoft.Compute/virtualMachines/" + "a" * 81,
    f"subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.Compute/virtualMachines/web",
    f"https://management.azure.com{VM}",
    "", None, 42, [VM], {"id": VM},
], ids=lambda v: repr(v)[-50:])
def test_vm_ids_are_parsed_strictly(value):
    with pytest.raises(BadId):
        parse_id(value, "vm")


@pytest.mark.parametrize(("value", "kind"), [
    (f"{GROUP}.", "resource_group"),  # a group name does not end in '.'
    (f"{GROUP}/", "resource_group"),
    (f"/subscriptions/{SUB}/resourceGroups/" + "g" * 91, "resource_group"),
    (f"/subscriptions/{SUB}/resourceGroups/rg prod", "resource_group"),
    (f"/subscriptions/{SUB}", "resource_group"),
    (VM, "resource_group"),
    (f"{GROUP}/providers/Microsoft.Network/virtualNetworks/vnet-1", "subnet"),
    (f"{SUBNET}/ipConfigurations/x", "subnet"),
    (f"{GROUP}/providers/Microsoft.Storage/storageAccounts/ab", "storage_account"),
    (f"{GROUP}/providers/Microsoft.Storage/storageAccounts/vmk-staging", "storage_account"),
    (f"{GROUP}/providers/Microsoft.Storage/storageAccounts/" + "a" * 25, "storage_account"),
    (RESTORE_POINT + "/diskRestorePoints/d1", "restore_point"),
    (VM, "restore_point"),
    (VAULT_POINT.replace("backupFabrics/Azure", "backupFabrics/Other"), "vault_point"),
    (VAULT_POINT + "/", "vault_point"),
    (VAULT_POINT.replace("recoveryPoints/1234567890123", "recoveryPoints/1/2"), "vault_point"),
    (VAULT_POINT, "restore_point"),
    (RESTORE_POINT, "vault_point"),
])
def test_other_kinds_are_parsed_strictly(value, kind):
    with pytest.raises(BadId):
        parse_id(value, kind)


def test_a_bad_id_message_names_the_kind_and_shows_the_shape():
    with pytest.raises(BadId, match="is not a storage account id .*storageAccounts/\\{name\\}"):
        parse_id(VM, "storage_account")
    with pytest.raises(BadId, match="must be a vm id"):
        parse_id(None, "vm")


# --- the allow-list ----------------------------------------------------------------------------------
def test_a_subscription_scope_allows_every_group_in_it():
    scopes = Scopes.parse(f"/subscriptions/{SUB.upper()}/")
    assert scopes.allows(parse_id(VM, "vm"))
    assert scopes.allows(parse_id(f"/subscriptions/{SUB}/resourceGroups/anything", "resource_group"))
    assert not scopes.allows(parse_id(f"/subscriptions/{OTHER_SUB}/resourceGroups/rg-prod", "resource_group"))


def test_a_group_scope_allows_that_group_only_whatever_its_case():
    scopes = Scopes.parse(f" /subscriptions/{SUB}/resourceGroups/RG-Prod/ ; /subscriptions/{OTHER_SUB}/resourceGroups/b")
    assert scopes.allows(parse_id(SUBNET, "subnet"))
    assert scopes.allows(parse_id(f"/subscriptions/{SUB}/resourceGroups/rg-PROD", "resource_group"))
    assert scopes.allows(parse_id(f"/subscriptions/{OTHER_SUB}/resourceGroups/B", "resource_group"))
    assert not scopes.allows(parse_id(f"/subscriptions/{SUB}/resourceGroups/rg-prod2", "resource_group"))
    assert not scopes.allows(parse_id(f"/subscriptions/{SUB}/resourceGroups/b", "resource_group"))
    assert not scopes.allows(parse_id(f"/subscriptions/{OTHER_SUB}/resourceGroups/rg-prod", "resource_group"))


def test_an_empty_setting_allows_nothing():
    scopes = Scopes.parse(" , ;")
    assert not scopes
    assert not scopes.allows(parse_id(VM, "vm"))
    assert Scopes.parse(f"/subscriptions/{SUB}")


@pytest.mark.parametrize("setting", [
    "*", "/subscriptions/*", f"/subscriptions/{SUB}/resourceGroups/*", "not-a-scope", f"{SUB}",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web",
    f"/subscriptions/{SUB},/subscriptions/nope",
])
def test_a_bad_setting_is_a_value_error(setting):
    with pytest.raises(ValueError, match="VMKEEPER_RESTORE_SCOPES"):
        Scopes.parse(setting)


# --- regressions: Unicode look-alikes (fixed in access.py: the id shapes are matched ASCII only) -------
@pytest.mark.parametrize(("value", "kind"), [
    (f"{GROUP}/providers/Micro\u017foft.Compute/virtualMachines/web", "vm"),  # 'ſ' folds to 's'
    (f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web\u212a", "vm"),  # KELVIN SIGN folds to 'k'
    (f"{GROUP}/providers/Microsoft.Compute/virtualMachines/web\u0131", "vm"),  # dotless i
    (f"/subscriptions/{SUB}/resourceGroups/r\u0435g", "resource_group"),  # Cyrillic е
    (f"/subscriptions/{SUB}/resourceGroups/rg\u0660", "resource_group"),  # ARABIC-INDIC DIGIT ZERO
    (f"/subscriptions/{SUB}/resourceGroups/prod-\u212a", "resource_group"),
    (f"{GROUP}/providers/Microsoft.Storage/storageAccounts/\u017ftaging", "storage_account"),
])
def test_unicode_look_alikes_are_refused(value, kind):
    with pytest.raises(BadId):
        parse_id(value, kind)


def test_a_kelvin_sign_group_does_not_pass_for_an_allowed_ascii_group():
    scopes = Scopes.parse(f"/subscriptions/{SUB}/resourceGroups/prod-k")
    assert scopes.allows(parse_id(f"/subscriptions/{SUB}/resourceGroups/PROD-K", "resource_group"))
    with pytest.raises(BadId):  # before the fix: parsed, and "prod-\u212a".lower() == "prod-k" was allowed
        scopes.allows(parse_id(f"/subscriptions/{SUB}/resourceGroups/prod-\u212a", "resource_group"))


def test_deeply_nested_json_is_not_authenticated_rather_than_a_recursion_error():
    # A few thousand '[' fit in the header limit; json.loads raised RecursionError, which escaped the API
    # (its caller check runs outside the handler's catch-all) instead of answering 401.
    for raw in (b"[" * 5000, b'{"claims": ' + b"[" * 4000 + b"]" * 4000 + b"}"):
        with pytest.raises(NotAuthenticated):
            principal(base64.b64encode(raw).decode())


# --- VMKEEPER_RESTORE_STAGING_ACCOUNTS ---------------------------------------------------------------------------
def test_the_staging_accounts_setting_is_read_lower_case_absent_means_unchecked_and_a_bad_entry_names_it():
    from shared.settings import RestoreSettings, SettingError

    base = {"VMKEEPER_SUBSCRIPTIONS": SUB}
    account = f"{GROUP}/providers/Microsoft.Storage/storageAccounts/vmkstaging"
    assert RestoreSettings.from_env(base).staging_accounts is None
    assert RestoreSettings.from_env({**base, "VMKEEPER_RESTORE_STAGING_ACCOUNTS": ""}).staging_accounts == frozenset()
    read = RestoreSettings.from_env({**base, "VMKEEPER_RESTORE_STAGING_ACCOUNTS": f" {account.upper()[:-10]}vmkstaging ,"})
    assert read.staging_accounts == {account.lower()}
    with pytest.raises(SettingError, match="VMKEEPER_RESTORE_STAGING_ACCOUNTS: .*not a storage account id"):
        RestoreSettings.from_env({**base, "VMKEEPER_RESTORE_STAGING_ACCOUNTS": f"{GROUP}"})
