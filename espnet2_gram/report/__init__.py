"""RESULTS.md tables and figures of the downstream runs."""
