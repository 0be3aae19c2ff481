"""The package's public API."""

from __future__ import annotations


def test_public_api_is_lazy_and_keeps_submodules():
    import cot_distill
    import cot_distill.generate

    assert callable(cot_distill.distill) and cot_distill.distill is cot_distill.generate.generate
    assert cot_distill.generate.__name__ == "cot_distill.generate"  # the module, not shadowed by a function
    for name in cot_distill.__all__:
        assert getattr(cot_distill, name) is not None
