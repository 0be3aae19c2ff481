"""msa_eval."""
