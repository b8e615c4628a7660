"""The package's public names are listed once and all exist."""

import llmgw_kernel.pricing as pricing


def test_all_lists_existing_names():
    assert sorted(pricing.__all__) == pricing.__all__
    for name in pricing.__all__:
        assert hasattr(pricing, name), name
