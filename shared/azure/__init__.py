"""Azure plumbing: SDK clients, Resource Graph paging, tables (ledger, write budget), Retry-After."""
