"""Leaf layer: value types, events, clock, ids and errors. Imports nothing of desk."""
