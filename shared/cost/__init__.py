"""Cost per VM and per policy (issue 24): Cost Management's actual cost of vmkeeper's points, an estimate for
points newer than the cost data, and a monthly budget per policy."""
