"""Helpers shared by the test suites, such as the fake upstream channel server."""
