"""Training scripts: `agent-stack train vla` (and the shared pieces: distributed setup, resumable state)."""
