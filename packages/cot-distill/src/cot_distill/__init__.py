"""cot_distill."""
