"""The `attain` command groups, one module each."""
