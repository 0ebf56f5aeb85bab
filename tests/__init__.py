"""The test suite (a package, so that helpers import as ``tests.toy`` from the repository root)."""
