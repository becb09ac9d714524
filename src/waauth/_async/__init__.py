"""The async implementation: the source from which ``waauth/_sync`` is generated."""
