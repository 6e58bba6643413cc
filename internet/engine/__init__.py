"""Training: the trainer, its data order, resumption, logs and multi-process launch."""
