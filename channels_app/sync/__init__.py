"""Outbound sync: dirty markers, the push engine, rate limiting, circuit breaking."""
