"""DR drills: a VM's recovery point restored into an isolated group and VNet, proven ready, torn down."""
