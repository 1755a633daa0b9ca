"""The composition root: settings, ``create_app``, the CLI, and the HTTP plumbing."""

import warnings

# Connexion imports Starlette's TestClient at import time, which warns about its own httpx
# dependency on every command pollable runs; pollable does not use that client.
warnings.filterwarnings(
    "ignore",
    message="Using `httpx` with `starlette.testclient` is deprecated",
    category=UserWarning,
)
