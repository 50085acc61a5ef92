"""A what-if-style dry check of infra/ without Azure (issue 20; devtools/whatif): every resource the Bicep
declares has a type and api-version its resource provider knows, and every property it sets is in that
api-version's PUT body, spelled as the spec spells it and not read-only.

The schemas are the models of azure-mgmt-* wheels (generated from the same REST specs ARM validates against),
pinned per api-version in devtools/whatif/sdk-wheels.txt and downloaded by `make setup`, never installed.
../shared/azure-api/specs holds none of the type@versions the Bicep uses (Compute and Disk excerpts, Backup's
2026-10-01 protection paths, Event Grid's 2018-01-01 data plane, Resource Graph), so it is not read here.

Not checkable offline, and listed by test_what_is_not_checked_is_only_what_offline_cannot_know: registry (AVM)
modules, whose resources are in the published module; type@versions no SDK release carries (accepted.py says
why); values set from parameters or module outputs; property values themselves (only names are checked)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from devtools.whatif import bicep, pinned_wheels
from devtools.whatif.accepted import SPEC_GAPS, UNVERIFIABLE
from devtools.whatif.check import REGISTRY_PREFIXES, Report, check
from devtools.whatif.schema import Shape, resolve
from devtools.whatif.sdk_wheels import SdkWheels, arm_type

INFRA = Path(__file__).resolve().parents[2] / "infra"


@cache
def schemas() -> SdkWheels:
    return SdkWheels(pinned_wheels())


@cache
def declarations() -> tuple[bicep.Declaration, ...]:
    return tuple(bicep.read_folder(INFRA))


@cache
def report() -> Report:
    return check(declarations(), schemas(), UNVERIFIABLE, SPEC_GAPS)


def dry_run(source: str) -> Report:
    return check(bicep.read(source.encode(), "snippet.bicep"), schemas(), UNVERIFIABLE, SPEC_GAPS)


def problems(source: str) -> list[str]:
    return [f"{f.path}: {f.problem}" if f.path else f.problem for f in dry_run(source).findings]


# --- infra/ as it is ------------------------------------------------------------------------------------

def test_every_resource_type_api_version_and_property_is_in_the_schemas():
    findings = [str(f) for f in report().findings]
    assert findings == [], "\n".join(findings)


def test_every_resource_declared_was_checked_or_is_listed_with_a_reason():
    resources = [d for d in declarations() if d.kind == "resource"]
    assert len(resources) >= 25  # the reader found infra/'s resources
    listed = {u.where for u in report().unchecked if not u.path}
    assert [d.where for d in resources if d not in report().checked and d.where not in listed] == []


def test_every_property_set_at_the_top_of_a_resource_was_looked_up():
    """No body silently skipped: each key a deployed resource sets (beyond Bicep's own) was found in the
    schema, or failed, or is listed as not checked."""
    seen = {(p.split(" ")[0], p.split(" ")[2]) for p in report().properties}
    seen |= {(x.where, x.path) for x in [*report().findings, *report().unchecked]}
    skipped = []
    for d in report().checked:
        if d.existing or not isinstance(d.body, bicep.Obj):
            continue
        for p in d.body.props:
            if p.key not in bicep.LANGUAGE_KEYS and p.key != "name" and (f"{d.file}:{p.line}", p.key) not in seen:
                skipped.append(f"{d.file}:{p.line} {d.symbol}.{p.key}")
    assert skipped == []
    assert len(report().properties) > 150  # nested properties too, not only the top


def test_what_is_not_checked_is_only_what_offline_cannot_know():
    reasons = {"registry module": 0, "no SDK release": 0, "expression": 0, "spec gap": 0}
    for u in report().unchecked:
        if u.resource.startswith("module ") and any(p in u.reason for p in REGISTRY_PREFIXES):
            reasons["registry module"] += 1
        elif u.reason in UNVERIFIABLE.values():
            reasons["no SDK release"] += 1
        elif "not known before deployment" in u.reason:
            reasons["expression"] += 1
        elif "accepted:" in u.reason:
            reasons["spec gap"] += 1
        else:
            raise AssertionError(f"unchecked for no known reason: {u}")
    print("\nNot checked by the dry check (offline):", *report().unchecked, sep="\n  ")
    modules = [d for d in declarations() if d.kind == "module" and d.reference.startswith(REGISTRY_PREFIXES)]
    assert reasons["registry module"] == len(modules)


def test_accepted_exceptions_are_still_needed():
    for reference, why in UNVERIFIABLE.items():
        resource_type, version = reference.rsplit("@", 1)
        assert schemas().covers(resource_type.split("/")[0]), reference
        assert version not in schemas().versions(resource_type), f"{reference} is checkable now: drop it"
        assert why
    for (resource_type, path), why in SPEC_GAPS.items():
        versions = schemas().versions(resource_type)
        assert versions, resource_type
        for version in versions:
            for body in schemas().bodies(resource_type, version):
                assert path not in resolve(body.shape).fields, f"{resource_type} {version} has {path} now"
        assert why


def test_every_pinned_wheel_brings_schemas():
    for wheel in pinned_wheels():
        assert SdkWheels([wheel]).describe() and SdkWheels([wheel])._requests, wheel.name


# --- the check fails on what ARM would refuse ------------------------------------------------------------

SITE = """
resource site 'Microsoft.Web/sites@2024-04-01' = {{
  name: 'app'
  location: 'westeurope'
  kind: 'functionapp,linux'
  properties: {{
    httpsOnly: true
    siteConfig: {{
      {key}: '1.2'
    }}
  }}
}}
"""


def test_a_sound_resource_passes():
    assert problems(SITE.format(key="minTlsVersion")) == []
    assert "site properties.siteConfig.minTlsVersion" in " ".join(dry_run(SITE.format(key="minTlsVersion")).properties)


def test_fails_on_a_misspelled_property():
    assert problems(SITE.format(key="minTlsVersoin")) == [
        "properties.siteConfig.minTlsVersoin: not in the schema of SiteConfig; did you mean 'minTlsVersion'?"]


def test_fails_on_a_property_in_the_wrong_case():
    assert problems(SITE.format(key="MinTlsVersion")) == [
        "properties.siteConfig.MinTlsVersion: spelled 'minTlsVersion' in the schema (SiteConfig)"]


def test_fails_on_a_wrong_api_version():
    found = problems(SITE.format(key="minTlsVersion").replace("@2024-04-01", "@2024-04-02"))
    assert len(found) == 1 and found[0].startswith("api-version 2024-04-02 of Microsoft.Web/sites is unknown")


def test_fails_on_an_unknown_type():
    found = problems(SITE.format(key="minTlsVersion").replace("Microsoft.Web/sites", "Microsoft.Web/site"))
    assert len(found) == 1 and found[0].startswith("the type Microsoft.Web/site is unknown to Microsoft.Web; if it")


def test_fails_on_a_provider_without_schemas():
    found = problems("resource x 'Microsoft.Nothing/things@2024-01-01' = {\n  name: 'x'\n}\n")
    assert len(found) == 1 and found[0].startswith("no schema for the provider Microsoft.Nothing")


def test_fails_on_a_read_only_property():
    source = SITE.format(key="minTlsVersion").replace("httpsOnly: true", "defaultHostName: 'x'")
    assert problems(source) == ["properties.defaultHostName: read-only in Site.properties: ARM ignores it"]


def test_an_existing_resource_needs_only_its_type_and_api_version():
    ok = "resource a 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n  name: 'a'\n}\n"
    assert problems(ok) == []
    assert problems(ok.replace("@2023-05-01", "@2023-05-02"))


def test_a_named_child_takes_only_the_names_its_type_has():
    config = """
resource site 'Microsoft.Web/sites@2024-04-01' existing = {{
  name: 'app'
}}
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {{
  parent: site
  name: '{name}'
  properties: {{
    {key}: true
  }}
}}
"""
    assert problems(config.format(name="authsettingsV2", key="platform")) == []
    assert problems(config.format(name="appsettings", key="ANY_SETTING")) == []  # a string dictionary
    assert problems(config.format(name="authsettingsV2", key="platfrom")) == [
        "properties.platfrom: not in the schema of SiteAuthSettingsV2.properties; did you mean 'platform'?"]
    assert problems(config.format(name="appsetings", key="x"))[0].startswith("name: 'appsetings' is not one of")


def test_a_polymorphic_property_is_checked_against_the_variant_it_names():
    subscription = """
resource sub 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {{
  name: 'x'
  properties: {{
    destination: {{
      endpointType: '{endpoint}'
      properties: {{
        queueName: 'q'
      }}
    }}
  }}
}}
"""
    assert problems(subscription.format(endpoint="StorageQueue")) == []
    webhook = problems(subscription.format(endpoint="WebHook"))
    assert len(webhook) == 1 and webhook[0].startswith(
        "properties.destination.properties.queueName: not in the schema of "
        "WebHookEventSubscriptionDestination.properties; it has: ") and "endpointUrl" in webhook[0]
    assert problems(subscription.format(endpoint="StorageQueues"))[0].startswith(
        "properties.destination.endpointType: 'StorageQueues' is not one of")


def test_loops_conditions_variables_and_unions_are_looked_into():
    source = """
var acls = {
  defaultAction: 'Allow'
  bypas: 'AzureServices'
}
resource accounts 'Microsoft.Storage/storageAccounts@2023-05-01' = [for name in names: if (make) {
  name: name
  location: 'westeurope'
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  tags: union(tags, {
    any: 'tag'
  })
  properties: {
    networkAcls: acls
    encryption: cmk ? {
      keySourc: 'Microsoft.Keyvault'
    } : null
  }
}]
"""
    assert problems(source) == [
        "properties.networkAcls.bypas: not in the schema of NetworkRuleSet; did you mean 'bypass'?",
        "properties.encryption.keySourc: not in the schema of Encryption; did you mean 'keySource'?"]


def test_a_value_not_known_before_deployment_is_listed_not_passed_over():
    source = ("resource v 'Microsoft.RecoveryServices/vaults@2024-04-01' = {\n  name: 'v'\n  location: 'x'\n"
              "  sku: {\n    name: 'RS0'\n    tier: 'Standard'\n  }\n  properties: vaultProperties\n}\n")
    r = dry_run(source)
    assert r.findings == []
    assert [(u.path, u.reason) for u in r.unchecked] == [
        ("properties", "set from `vaultProperties`, not known before deployment")]


def test_a_spec_gap_is_listed_with_its_reason_not_failed():
    source = ("resource site 'Microsoft.Web/sites@2024-04-01' existing = {\n  name: 'app'\n}\n"
              "resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {\n"
              "  parent: site\n  name: 'ftp'\n  location: 'westeurope'\n  properties: {\n    allow: false\n  }\n}\n")
    r = dry_run(source)
    assert r.findings == []
    assert [u.path for u in r.unchecked] == ["location"]
    assert problems(source.replace("location:", "locaton:"))  # only that property of that type


def test_a_registry_module_is_listed_as_not_checked():
    r = dry_run("module m 'br/public:avm/res/web/serverfarm:0.1.1' = {\n  name: 'plan'\n}\n")
    assert r.findings == [] and len(r.unchecked) == 1 and "registry module" in r.unchecked[0].reason


def test_broken_bicep_is_refused_not_half_read():
    with pytest.raises(ValueError, match="snippet.bicep:1: Bicep syntax error"):
        bicep.read(b"resource x 'A/b@2020-01-01' = {\n  name: 'x'\n", "snippet.bicep")


# --- the reader and the schema index ---------------------------------------------------------------------

def test_the_reader_sees_what_bicep_declares():
    source = b"""
var kind = 'StorageV2'
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'a'
  kind: kind
  resource blobs 'blobServices@2023-05-01' = {
    name: 'default'
  }
}
resource other 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: 'b'
}
module plan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'plan'
}
"""
    found = bicep.read(source, "x.bicep")
    assert [(d.symbol, d.kind, d.reference, d.existing, d.line) for d in found] == [
        ("account", "resource", "Microsoft.Storage/storageAccounts@2023-05-01", False, 3),
        ("blobs", "resource", "Microsoft.Storage/storageAccounts/blobServices@2023-05-01", False, 6),
        ("other", "resource", "Microsoft.Storage/storageAccounts@2023-05-01", True, 10),
        ("plan", "module", "br/public:avm/res/web/serverfarm:0.1.1", False, 13)]
    assert found[0].body.get("kind") == bicep.Lit("StorageV2", 2)  # the variable, resolved
    assert [p.key for p in found[0].body.props] == ["name", "kind"]  # the nested resource is not a property


@pytest.mark.parametrize("url, expected", [
    ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Web/sites/{name}",
     ("Microsoft.Web/sites", None)),
    ("/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites/{name}/config/appsettings",
     ("Microsoft.Web/sites/config", "appsettings")),
    ("/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
     ("Microsoft.Authorization/roleAssignments", None)),
    ("/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}", ("Microsoft.Resources/resourceGroups", None)),
    ("/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites", None),  # a collection
    ("/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites/{name}/restart", None),  # an action
])
def test_a_request_path_names_its_resource_type(url, expected):
    assert arm_type(url) == expected


def test_the_index_knows_types_and_api_versions_from_the_wheels():
    assert {"2022-09-01", "2023-01-01", "2024-04-01"} <= schemas().versions("microsoft.web/SITES")
    assert "2022-04-01" in schemas().versions("Microsoft.Authorization/roleAssignments")
    site = resolve(schemas().bodies("Microsoft.Web/sites", "2024-04-01")[0].shape)
    assert isinstance(site, Shape) and site.name == "Site"
    properties = site.fields["properties"].type
    assert {"serverFarmId", "siteConfig", "functionAppConfig"} <= set(properties.fields)
    assert properties.fields["defaultHostName"].readonly and not properties.fields["httpsOnly"].readonly


def test_a_missing_wheel_names_its_remedy(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"azure-mgmt-web==8\.0\.0.*run `make setup`"):
        pinned_wheels(tmp_path)
