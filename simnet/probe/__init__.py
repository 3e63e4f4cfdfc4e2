"""Proving that an emulated NAT behaves as configured, by measuring it (RFC 5780 style)."""
