"""Plain helpers shared by test modules (imported normally; no fixtures here)."""
