"""Microsoft.Authorization/locks: CanNotDelete and ReadOnly management locks at subscription,
resource group and resource scope, enforced as ARM enforces them (409 ScopeLocked)."""
