"""Microsoft.Network, minimal: virtual networks with subnets, and network interfaces, so a VM PUT
can be validated as ARM validates it."""
