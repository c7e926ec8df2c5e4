"""What the `reckonry` command says about user errors: one line per problem, never a traceback."""

from typing import Any

import typer
import typer.core
from pydantic import ValidationError

from app.embedded import EmbeddedServersNotInstalledError
from app.kit.problems import ProblemError
from app.kit.unreachable import unreachable_service
from app.settings import Settings

USER_ERROR_EXIT_CODE = 2
# Values of these settings are secret or may hold a password: named, never echoed.
_UNECHOED = ("SECRET", "PASSWORD", "KEYS", "URL")


class CliError(Exception):
    """A mistake the user can fix; its message says what is wrong and how to fix it."""


class UserErrorGroup(typer.core.TyperGroup):
    """Runs a command and turns every user error into `Error: ...` lines and exit code 2."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click's Context privately
        try:
            return super().invoke(ctx)
        except Exception as error:
            lines = problems_of(error)
            if lines is None:
                raise
            for line in lines:
                typer.echo(f"Error: {line}", err=True)
            raise typer.Exit(USER_ERROR_EXIT_CODE) from None


def problems_of(error: Exception) -> list[str] | None:
    """The lines that explain `error` to the user; None when it is not a user error."""
    if isinstance(error, ValidationError):
        return setting_problems(error) if error.title == Settings.__name__ else None
    if isinstance(error, ProblemError):
        return [error.detail]
    if isinstance(error, CliError | EmbeddedServersNotInstalledError):
        return [str(error)]
    unreachable = unreachable_service(error)
    if unreachable is not None:
        setting = "DATABASE_URL" if unreachable.service == "database" else "REDIS_URL"
        return [
            f"cannot reach the {unreachable.service} ({unreachable.cause}). Check {setting}, "
            "or unset DATABASE_URL and REDIS_URL to use the embedded servers."
        ]
    return None


def setting_problems(error: ValidationError) -> list[str]:
    return [_setting_problem(item) for item in error.errors()]


def _setting_problem(item: Any) -> str:
    name = str(item["loc"][0]) if item["loc"] else "a setting"
    message = str(item["msg"]).removeprefix("Value error, ")
    echoed = not any(part in name for part in _UNECHOED)
    shown = f"{name}={item['input']!r}" if echoed and isinstance(item["input"], str) else name
    default = _default_of(name)
    unset = f", or unset it for the default ({default})" if default is not None else ""
    return f"{shown}: {message}. Fix {name} in the environment or .env{unset}."


def _default_of(name: str) -> object | None:
    defaults = {f.validation_alias: f.default for f in Settings.model_fields.values()}
    default: object | None = defaults.get(name)
    return default
