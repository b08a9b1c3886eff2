"""The only importers of dependencies' private names, one module per dependency, each
with a test (tests/tenants/test_adapters.py) that fails loudly when the dependency
changes under it.
"""
