"""RPO compliance: per VM and kind of point, the age of the newest complete point against the policy's RPO."""
