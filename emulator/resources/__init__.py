"""Microsoft.Resources: subscriptions, resource groups, tags, and resource listings: enough for
ids and scopes to resolve."""
