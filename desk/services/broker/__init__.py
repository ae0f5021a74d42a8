"""Brokers: the only code that turns order requests into fills."""
