"""The acceptance suites, shipped in the wheel: ``pytest --pyargs pytest_gpufabric.suites``
runs them from an installed package (a container image has no checkout); in a checkout the
top-level ``suites/`` is the same directory."""
