"""Feeds: where candles come from (simulated market, exchange, replay)."""
