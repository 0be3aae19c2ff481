"""msa_rl."""
