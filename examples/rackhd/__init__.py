"""The RackHD message bus (seed 002), described with relaybus and partly running."""
