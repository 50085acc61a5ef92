"""The function app as Flex Consumption takes it: no site property or app setting Flex rejects or has
deprecated, anywhere in a Microsoft.Web/sites or sites/config resource (offline, as tests/infra/test_bicep.py
parses the Bicep)."""

from __future__ import annotations

import pytest

from tests.infra.test_bicep import BICEP_FILES, INFRA, app_settings, bicep

# Microsoft Learn, "App settings reference for Azure Functions", section "Flex Consumption plan deprecations"
# (https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations):
# site properties Flex rejects or replaced. ARM answers a site carrying some of them with 400 BadRequest "The
# following list of 5 site configuration properties (Site.SiteConfig.FtpsState, Site.SiteConfig.Use32BitWorkerProcess,
# Site.SiteConfig.PreWarmedInstanceCount, Site.SiteConfig.NetFrameworkVersion,
# Site.SiteConfig.FunctionsRuntimeScaleMonitoringEnabled) for Flex Consumption sites is invalid" (Azure/azure-cli#31414):
# the last one is not in Learn's table but is in ARM's answer, so it is here too.
FLEX_REJECTED_PROPERTIES = {
    "ftpsState",  # FTPS not supported
    "use32BitWorkerProcess",  # 32-bit not supported
    "isReserved", "IsXenon", "windowsFxVersion", "alwaysOn",  # not valid
    "preWarmedInstanceCount",  # renamed: functionAppConfig.scaleAndConcurrency.alwaysReady
    "functionAppScaleLimit",  # renamed: functionAppConfig.scaleAndConcurrency.maximumInstanceCount
    "containerSize",  # renamed: functionAppConfig.scaleAndConcurrency.instanceMemoryMB
    "javaVersion", "powerShellVersion", "netFrameworkVersion", "linuxFxVersion",  # functionAppConfig.runtime
    "functionsRuntimeScaleMonitoringEnabled",  # ARM's answer above
}
# The same section's app settings: replaced by functionAppConfig (runtime, scaleAndConcurrency, deployment) or not
# used on Flex.
FLEX_DEPRECATED_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT", "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "WEBSITE_NODE_DEFAULT_VERSION", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTOVERVNET", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_VNET_ROUTE_ALL", "WEBSITE_DNS_SERVER",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD",
}
WEB_TYPES = ("Microsoft.Web/sites", "Microsoft.Web/sites/config")


def keys(node) -> set[str]:
    """Every object key at any depth of a pycep value (quoted keys unquoted)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            found.add(str(k).strip("'"))
            found |= keys(v)
    elif isinstance(node, list):
        for v in node:
            found |= keys(v)
    return found


def strings(node) -> set[str]:
    """Every string value at any depth (an appSettings array's ``name: 'X'``)."""
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(strings(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(strings(v) for v in node))
    return set()


def web_resources() -> dict[str, dict]:
    """Every Microsoft.Web/sites and sites/config resource in infra/, by file and symbolic name."""
    found = {}
    for path in BICEP_FILES:
        rel = path.relative_to(INFRA).as_posix()
        for name, res in (bicep(rel).get("resources") or {}).items():
            if res["type"] in WEB_TYPES:
                found[f"{rel}:{name}"] = res
    return found


def test_the_walk_finds_the_site_and_its_config():
    found = web_resources()
    assert {"app/function.bicep:site", "app/function.bicep:settings", "app/function.bicep:auth"} <= set(found)
    assert {"minTlsVersion", "functionAppConfig", "serverFarmId"} <= keys(found["app/function.bicep:site"])


@pytest.mark.parametrize("bad", ["ftpsState", "alwaysOn", "linuxFxVersion"])
def test_the_check_sees_a_rejected_property(bad):
    site = {"config": {"properties": {"siteConfig": {"minTlsVersion": "1.2", bad: "x"}}}}
    assert {k.lower() for k in keys(site)} & {p.lower() for p in FLEX_REJECTED_PROPERTIES} == {bad.lower()}


def test_no_site_property_flex_consumption_rejects():
    rejected = {p.lower() for p in FLEX_REJECTED_PROPERTIES}
    for where, res in web_resources().items():
        assert sorted(k for k in keys(res["config"]) if k.lower() in rejected) == [], where


def test_no_app_setting_flex_consumption_deprecates():
    deprecated = {s.lower() for s in FLEX_DEPRECATED_SETTINGS}
    assert {k for k in app_settings() if k.lower() in deprecated} == set()
    for where, res in web_resources().items():  # nor inline (siteConfig.appSettings) or as another config's keys
        named = keys(res["config"]) | strings(res["config"])
        assert sorted(n for n in named if n.lower() in deprecated) == [], where
