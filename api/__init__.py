"""The FastAPI service that accepts, lists, cancels and serves exports."""
