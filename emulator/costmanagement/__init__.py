"""Cost Management (query) and the Azure Retail Prices API over what the emulated fleet holds."""
