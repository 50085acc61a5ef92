"""The policy document: named policies, their schedules and retention blocks, parsed once into typed objects."""
