"""A TF-Serving-compatible development server for machines without Docker or a GPU."""
