"""The served job APIs. The server derives everything it knows about an API from here."""

from __future__ import annotations

from collections.abc import Sequence

from .captain import DESCRIPTOR as CAPTAIN
from .crosmos import DESCRIPTOR as CROSMOS
from .descriptor import ApiDescriptor
from .sandbox import DESCRIPTOR as SANDBOX

REGISTRY: tuple[ApiDescriptor, ...] = (CROSMOS, CAPTAIN, SANDBOX)


def by_name(apis: Sequence[ApiDescriptor]) -> dict[str, ApiDescriptor]:
    """The descriptors by API name; two APIs with one name are a mistake."""
    named = {api.name: api for api in apis}
    if len(named) != len(apis):
        raise ValueError("two served APIs share a name")
    return named


#: The job APIs: those that issue keys and create jobs.
JOB_APIS: tuple[ApiDescriptor, ...] = tuple(api for api in REGISTRY if api.keys is not None)

#: The registered APIs by name.
APIS = by_name(REGISTRY)
