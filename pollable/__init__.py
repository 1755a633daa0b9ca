"""pollable: a contract-first reference server and partner sandbox for asynchronous
ingestion-job APIs.

Installed, the project is this one import package; in the repository its parts keep their
top-level folders (``lifecycle/``, ``store/``, ``handlers/``, ``server/``, ``openapi/``),
mapped under ``pollable.`` by ``pyproject.toml``.
"""

from importlib import metadata

try:
    __version__ = metadata.version("pollable")
except metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"
