"""Tests of pure logic; the integration tests run the real thing."""
