"""The sync implementation, generated from ``waauth/_async``."""
