"""Thin handlers, one module per API resource, and the presenters that shape replies."""
