"""The notebooks, run by nbval in the test suite. A package only so that its conftest.py is
imported as ``notebooks.conftest``: the tests import their own ``conftest`` by that bare name."""
