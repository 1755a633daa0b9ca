"""The composition root: settings, ``create_app``, the CLI, and the HTTP plumbing."""
