"""The Azure Retail Prices API (public, no credential: ``VMKEEPER_RETAIL_PRICES_URL``), read once a day: the
price per GB-month of an LRS snapshot in each region the fleet's points are in, kept in the cost table (partition
``cost-prices``, one row per region and day) so a day's runs ask the API once per region."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from ..azure.ledger import Ledger

log = logging.getLogger("vmkeeper.cost")
PARTITION = "cost-prices"
TIMEOUT = 30
MAX_PAGES = 50
REGION = re.compile(r"^[a-z0-9]{1,40}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


def snapshot_price(items: Iterable[dict[str, Any]], currency: str | None = None) -> float | None:
    """The LRS snapshot meter's retail price per GB-month among a region's Storage items (Consumption, no tier), in
    ``currency`` when given (an item in another is not a price in it)."""
    found = [i for i in items if i.get("type") == "Consumption"
             and (currency is None or str(i.get("currencyCode") or "").upper() == currency) and i.get("unitOfMeasure") == "1 GB/Month"
             and "snapshot" in f"{i.get('meterName', '')} {i.get('productName', '')}".lower()
             and "lrs" in f"{i.get('skuName', '')} {i.get('meterName', '')}".lower()
             and not float(i.get("tierMinimumUnits") or 0)]
    if not found:
        return None
    return min(float(i["retailPrice"]) for i in found)


class RetailPrices:
    def __init__(self, url: str, ledger: Ledger, ca_bundle: str | None = None):
        self.url, self.ledger, self.ca_bundle = url, ledger, ca_bundle
        self._session: Any = None

    def _get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False
        resp = self._session.get(url, params=params, timeout=TIMEOUT, verify=self.ca_bundle or True)
        if not resp.ok:  # the API says why (e.g. a currency it does not serve): kept in the run's summary
            raise requests.HTTPError(f"{resp.status_code}: {resp.text[:200]}", response=resp)
        return resp.json()

    def fetch(self, region: str, currency: str = "USD") -> float | None:
        """The region's snapshot price in ``currency`` from the API (``currencyCode``; USD is its default), page
        after page (NextPageLink)."""
        page = self._get(self.url, {"currencyCode": f"'{currency}'",
                                    "$filter": f"serviceName eq 'Storage' and armRegionName eq '{region}'"})
        items = list(page.get("Items") or [])
        pages = 1
        while page.get("NextPageLink") and pages < MAX_PAGES:
            page = self._get(page["NextPageLink"])
            items += page.get("Items") or []
            pages += 1
        return snapshot_price(items, currency)

    def snapshot_prices(self, regions: Iterable[str], today: date, failed: dict[str, str] | None = None,
                        currency: str = "USD") -> dict[str, float]:
        """Region → price per GB-month in ``currency``; today's copy when kept, else read and kept. A region the API
        prices no snapshot in is left out (its points are not estimated; the run says so), and so is one whose
        read failed (said in ``failed``, region → why; not kept: a later run asks again)."""
        import requests

        out: dict[str, float] = {}
        if not CURRENCY.match(currency):  # it goes into the query: nothing else may
            return out
        for region in sorted({r.replace(" ", "").lower() for r in regions if r}):
            if not REGION.match(region):  # a region name goes into the filter: nothing else may
                continue
            key = f"{region}|{today.isoformat()}" if currency == "USD" else f"{region}|{currency}|{today.isoformat()}"
            kept = self.ledger.get(PARTITION, key)
            if kept is not None:
                price = json.loads(kept["price"])
            else:
                try:
                    price = self.fetch(region, currency)
                except (requests.RequestException, ValueError) as exc:  # unreachable, refused, not JSON
                    log.warning("cost: the retail price of %s could not be read: %s", region, exc)
                    if failed is not None:
                        failed[region if currency == "USD" else f"{region} ({currency})"] = str(exc)[:300]
                    continue
                self.ledger.record(PARTITION, key, {"price": json.dumps(price), "region": region, "currency": currency,
                                                    "day": today.isoformat()})
            if price is not None:
                out[region] = float(price)
        return out
