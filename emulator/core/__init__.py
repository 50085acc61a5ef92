"""The emulator's framework, shared by every resource provider."""
