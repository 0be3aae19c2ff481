"""msa-thinker umbrella."""
