"""What every folder may import: user-facing errors, the registry, the strict config base, whole-file writes and
the named stop points of the kill tests. Nothing here imports another harness folder."""
