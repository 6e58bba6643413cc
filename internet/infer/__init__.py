"""Inference: one batch through the network (`predict.infer_batch`), a data set (`predict.predict`), decoding, and the
single-image `Predictor`."""
