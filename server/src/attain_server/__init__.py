"""Attain."""
