"""Running the ``pollable`` command in-process, as the CLI tests do: no traceback ever,
and a failing command's one error line."""

from __future__ import annotations

from click.testing import CliRunner, Result

from pollable.server import cli


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), env=env, prog_name="pollable")
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exception
    return result


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(*args: str, code: int = 1, env: dict[str, str] | None = None) -> str:
    """The one error line of a command that fails."""
    result = invoke(*args, env=env)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ")
    return error
