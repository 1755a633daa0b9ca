"""The control plane's contract names the choices the server makes from its registry and
catalogue, so valid data is what the server accepts: these must not drift apart."""

from __future__ import annotations

from pollable.handlers.registry import APIS, JOB_APIS
from pollable.lifecycle.scenarios import CATALOGUE
from pollable.server import contract

SCHEMAS = contract.load(APIS["sandbox"]).document["components"]["schemas"]


def test_scenario_names_are_the_catalogue() -> None:
    assert SCHEMAS["ScenarioName"]["enum"] == list(CATALOGUE)


def test_a_key_names_a_job_api_and_one_of_its_environments() -> None:
    choices = {
        branch["properties"]["api"]["const"]: branch["properties"]["environment"]["enum"]
        for branch in SCHEMAS["KeyCreate"]["oneOf"]
    }
    assert choices == {api.name: list(api.key_rule.environments) for api in JOB_APIS}
