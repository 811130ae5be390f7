"""Stage 2 of the pipeline: the model zoos (mini, imagenet) behind one interface."""
