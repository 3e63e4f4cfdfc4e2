"""The kernel side: plans a network from a scenario and builds it in namespaces."""
