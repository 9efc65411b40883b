"""Test support shipped with storied: conformance suites, hostile paths, local test servers."""
