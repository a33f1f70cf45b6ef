"""Helpers shared by the test packages; docs/architecture.md ("Tests: tests/support") says which is where."""
