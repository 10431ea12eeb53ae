"""Training: prepare face crops from deepfake datasets, train and evaluate a Keras detector."""
