"""Reliability tests: crashes, provider outages, API fuzzing and webhook fuzzing (all marked slow)."""
