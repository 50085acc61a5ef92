"""The pure rules of shared/restore/ilr.py: a file recovery session's duration (default and at most Azure's 12
hours), the script's file name, the operation id in Azure's monitor headers."""

from __future__ import annotations

import pytest

from shared.restore import ilr


def test_the_duration_defaults_to_12_hours_and_is_at_most_azures_limit():
    assert ilr.bounded_hours(None) == 12.0 == ilr.MAX_HOURS
    assert ilr.bounded_hours(1) == 1.0 and ilr.bounded_hours(12) == 12.0 and ilr.bounded_hours(0.25) == 0.25


@pytest.mark.parametrize("hours", [12.01, 13, 24, 0, 0.1, -1, float("nan"), float("inf"), True, "12", [12]])
def test_a_duration_outside_it_is_refused_naming_the_field(hours):
    with pytest.raises(ValueError, match="^duration_hours: "):
        ilr.bounded_hours(hours)


def test_the_script_is_named_for_the_vm_and_azures_suffix():
    assert ilr.script_name("vm-files", "38823086363464", ".py") == "vm-files_38823086363464.py"
    assert ilr.script_name("vm-files", "", ".ps1") == "vm-files.ps1"
    assert ilr.script_name("../evil vm", "1", ".exe") == ".._evil_vm_1.exe"


def test_the_operation_comes_from_the_monitor_headers():
    base = "https://management.azure.com/Subscriptions/s/resourceGroups/g/providers/Microsoft.RecoveryServices/vaults/v/" \
           "backupFabrics/Azure/protectionContainers/c/protectedItems/i"
    assert ilr.operation_id({"Azure-AsyncOperation": f"{base}/operationsStatus/abc-1?api-version=2016-12-01"}) == "abc-1"
    assert ilr.operation_id({"Location": f"{base}/operationResults/abc-2?api-version=2016-12-01"}) == "abc-2"
    assert ilr.operation_id({}) is None and ilr.operation_id(None) is None
