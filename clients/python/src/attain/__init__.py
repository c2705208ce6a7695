"""Attain generated protobuf packages."""
