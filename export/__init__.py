"""Export: a trained run -> a validated, warmed-up, versioned SavedModel, published atomically."""
