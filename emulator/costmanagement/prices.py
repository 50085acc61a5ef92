"""The emulator's own price sheet: the one source of the prices both the Retail Prices endpoint (retail.py) serves
and Cost Management's query (billing.py) charges, so a client pricing the fleet from one finds the other's sums.

Meters and numbers are the emulator's (USD, retail = unit price, no tiers), shaped as the Retail Prices API
shapes its items (Learn "Azure Retail Prices REST API"); they are not Azure's current prices.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

CURRENCY = "USD"
EFFECTIVE = "2026-01-01T00:00:00Z"
# Regions always listed; any region the fleet uses is listed too (factor 1.0 unless named here).
REGION_FACTORS = {"westeurope": 1.0, "northeurope": 0.96, "eastus": 0.92, "eastus2": 0.92, "westus2": 0.94,
                  "uksouth": 1.02, "francecentral": 1.04, "germanywestcentral": 1.05, "swedencentral": 0.98,
                  "centralus": 0.93}


@dataclass(frozen=True)
class Meter:
    key: str  # how billing.py names it
    service_name: str
    service_family: str
    product_name: str
    sku_name: str
    meter_name: str
    unit: str  # unitOfMeasure
    base_price: float  # USD per unit, factor 1.0


SNAPSHOT_LRS = Meter("snapshot-lrs", "Storage", "Storage", "Snapshots", "Standard LRS", "Standard LRS Snapshots",
                     "1 GB/Month", 0.05)
SNAPSHOT_ZRS = Meter("snapshot-zrs", "Storage", "Storage", "Snapshots", "Standard ZRS", "Standard ZRS Snapshots",
                     "1 GB/Month", 0.0625)
PROTECTED_INSTANCE = Meter("backup-instance", "Backup", "Storage", "Backup", "Azure VM", "Azure VM Protected Instances",
                           "1/Month", 10.0)
BACKUP_GRS = Meter("backup-grs", "Backup", "Storage", "Backup", "Standard", "GRS Data Stored", "1 GB/Month", 0.0448)
METERS = (SNAPSHOT_LRS, SNAPSHOT_ZRS, PROTECTED_INSTANCE, BACKUP_GRS)


def price(meter: Meter, region: str) -> float:
    return round(meter.base_price * REGION_FACTORS.get(region.replace(" ", "").lower(), 1.0), 6)


def _guid(*parts: str) -> str:
    h = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def item(meter: Meter, region: str) -> dict[str, Any]:
    """One Retail Prices item (Learn's field names)."""
    value = price(meter, region)
    return {"currencyCode": CURRENCY, "tierMinimumUnits": 0.0, "retailPrice": value, "unitPrice": value,
            "armRegionName": region, "location": region, "effectiveStartDate": EFFECTIVE,
            "meterId": _guid("meter", meter.key, region), "meterName": meter.meter_name,
            "productId": _guid("product", meter.product_name)[:12].upper(), "skuId": _guid("sku", meter.key)[:17].upper(),
            "productName": meter.product_name, "skuName": meter.sku_name, "serviceName": meter.service_name,
            "serviceId": _guid("service", meter.service_name)[:12].upper(), "serviceFamily": meter.service_family,
            "unitOfMeasure": meter.unit, "type": "Consumption", "isPrimaryMeterRegion": True, "armSkuName": ""}


def regions(store: Any) -> list[str]:
    found = set(REGION_FACTORS)
    for res in store.resources.values():
        if res.location:
            found.add(res.location.replace(" ", "").lower())
    return sorted(found)


def sheet(store: Any) -> list[dict[str, Any]]:
    return [item(meter, region) for region in regions(store) for meter in METERS]
