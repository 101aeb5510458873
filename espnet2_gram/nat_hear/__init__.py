"""Nat-HEAR: HEAR tasks re-rendered as naturalistic spatial scenes (rooms, noise, formats)."""
