"""A TripleO-like workflow pushing its progress to browsers through the firehose (seed 000)."""
