"""Population runs: a fleet's networks as a mix of classes, sampled, called, estimated."""
