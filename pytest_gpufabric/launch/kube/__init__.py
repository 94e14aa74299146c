"""The kubernetes launcher: ranks in pods, reached through the API server."""
