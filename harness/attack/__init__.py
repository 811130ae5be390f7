"""Stage 3 of the pipeline: adversarial generation on the PC float model, into cached PNG sets."""
