"""The record of what happened: sync log, alerts, incidents, reconciliation, health.

Models arrive with the outbound engine (issue 4) and reconciliation (issue 6);
the app exists now so the dependency direction is fixed from the start.
"""
