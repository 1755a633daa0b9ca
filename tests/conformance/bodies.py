"""Valid request bodies for every job-creating operation, and fake credentials to put in them.

Credentials look like real ones (they pass the sandbox's failure rules in
``handlers/captain/credentials.py``, so jobs made with them scan and run) and carry a random
core, so a test can search for them anywhere (a file, a log, a reply) without false
positives.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

SPACE_ID = "3f8e2a1c-5b7d-4e9a-8c6f-2d1b0a9e7c54"

CROSMOS_CREATES = {
    "/api/v1/sources": {"space_id": SPACE_ID, "sources": [{"content": "Ada wrote programs."}]},
    "/api/v1/conversations": {
        "space_id": SPACE_ID,
        "messages": [{"role": "user", "content": "I live in Lisbon."}],
    },
}

#: Captain index operations: path suffix under /v2/collections/{name}/index/ -> what it needs.
CAPTAIN_TARGETS: dict[str, dict[str, Any]] = {
    "url": {"urls": ["https://example.com/a.pdf", "https://example.com/b.docx"]},
    "text": {"content": "Some notes worth indexing."},
    "s3": {"bucket_name": "acme-docs", "max_files": 4},
    "s3/file": {"bucket_name": "acme-docs", "file_uri": "reports/q3.pdf"},
    "s3/directory": {"bucket_name": "acme-docs", "directory_path": "reports/", "max_files": 3},
    "gcs": {"bucket_name": "acme-docs", "max_files": 3},
    "gcs/file": {"bucket_name": "acme-docs", "file_uri": "gs://acme-docs/a.pdf"},
    "gcs/directory": {"bucket_name": "acme-docs", "directory_path": "x", "max_files": 3},
    "azure": {"container_name": "docs", "max_files": 3},
    "azure/file": {"container_name": "docs", "file_uri": "a.pdf"},
    "azure/directory": {"container_name": "docs", "directory_path": "x/", "max_files": 3},
    "r2": {"bucket_name": "acme-docs", "max_files": 3, "jurisdiction": "eu"},
    "r2/file": {"bucket_name": "acme-docs", "file_uri": "a.pdf"},
    "r2/directory": {"bucket_name": "acme-docs", "directory_path": "x", "max_files": 3},
}


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class FakeCredentials:
    """One set of credentials per provider; ``cores`` are the random parts to search for."""

    aws_access_key_id: str
    aws_secret_access_key: str
    gcs_private_key: str
    azure_account_key: str
    r2_access_key_id: str
    r2_secret_access_key: str

    @classmethod
    def new(cls) -> FakeCredentials:
        upper = string.ascii_uppercase + string.digits
        b64 = string.ascii_letters + string.digits
        return cls(
            aws_access_key_id="AKIA" + _random(upper, 16),
            aws_secret_access_key="PLBLAWS/" + _random(b64, 32),
            gcs_private_key="PLBLGCS" + _random(b64, 48),
            azure_account_key="PLBLAZURE" + _random(b64, 77) + "==",
            r2_access_key_id=secrets.token_hex(16),
            r2_secret_access_key=secrets.token_hex(32),
        )

    @property
    def service_account_json(self) -> str:
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "pollable-fake",
                "client_email": "indexer@pollable-fake.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----\n"
                + self.gcs_private_key
                + "\n-----END PRIVATE KEY-----\n",
            }
        )

    def for_provider(self, provider: str) -> dict[str, str]:
        if provider == "s3":
            return {
                "aws_access_key_id": self.aws_access_key_id,
                "aws_secret_access_key": self.aws_secret_access_key,
            }
        if provider == "gcs":
            return {"service_account_json": self.service_account_json}
        if provider == "azure":
            return {"account_name": "acmestore", "account_key": self.azure_account_key}
        if provider == "r2":
            return {
                "account_id": "0" * 32,
                "access_key_id": self.r2_access_key_id,
                "secret_access_key": self.r2_secret_access_key,
            }
        return {}

    @property
    def needles(self) -> list[str]:
        """Every secret string, whole, plus its random core alone."""
        whole = [
            self.aws_access_key_id,
            self.aws_secret_access_key,
            self.service_account_json,
            self.gcs_private_key,
            self.azure_account_key,
            self.r2_access_key_id,
            self.r2_secret_access_key,
        ]
        cores = [
            self.aws_access_key_id[4:],
            self.aws_secret_access_key[8:],
            self.gcs_private_key[7:],
            self.azure_account_key[9:-2],
        ]
        return whole + cores


def captain_body(target: str, credentials: FakeCredentials | None = None) -> dict[str, Any]:
    credentials = credentials or FakeCredentials.new()
    provider = target.split("/")[0]
    if target == "text":
        return dict(CAPTAIN_TARGETS[target])
    return {
        "processing_type": "basic",
        **CAPTAIN_TARGETS[target],
        **credentials.for_provider(provider),
    }
