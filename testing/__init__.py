"""Testing against a pollable sandbox: ``SandboxClient``, a Python client of its control
plane, and a pytest plugin (``pollable.testing.plugin``, loaded by pytest through the
``pytest11`` entry point) whose ``pollable`` fixture gives each test its own tenant, keys
and test clock."""

from .client import SandboxClient, SandboxError
from .sandbox import Sandbox, SandboxClock

__all__ = ["Sandbox", "SandboxClient", "SandboxClock", "SandboxError"]
