"""What the dry check accepts without a schema to prove it, each with its reason (tests/infra/test_whatif.py
checks every entry is still needed: the schemas really lack it)."""

# type@api-version -> why no pinned schema has it. The resource is listed as not checked.
UNVERIFIABLE: dict[str, str] = {
    "Microsoft.Resources/resourceGroups@2024-03-01":
        "no azure-mgmt-resource release carries Microsoft.Resources 2024-03-01 for resource groups (23.3.0: "
        "2022-09-01, 2024-07-01, 2024-11-01); the Bicep compiler's type index (bicep-types-az) has it",
    "Microsoft.OperationalInsights/workspaces@2023-09-01":
        "no azure-mgmt-loganalytics release carries 2023-09-01 (13.0.0b7: 2019-09-01, 2020-08-01, 2022-10-01; "
        "13.1.0: 2025-07-01); the Bicep compiler's type index (bicep-types-az) has it",
}

# (type, property path) -> why ARM needs a property its spec lacks. Listed as not checked, not failed.
SPEC_GAPS: dict[tuple[str, str], str] = {
    ("Microsoft.Web/sites/basicPublishingCredentialsPolicies", "location"):
        "ARM answers 'The parameter location has an invalid value' without it, though the spec doesn't "
        "declare it (Azure/bicep-types-az#1317, #1529; Azure/bicep#7396)",
}
