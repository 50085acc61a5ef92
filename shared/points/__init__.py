"""Recovery points as every capability sees them: what is in use (pins), read once, used by all."""
