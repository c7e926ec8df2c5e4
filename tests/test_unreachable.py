"""One judgement of "the database or Redis cannot be reached", for the API's 503 and the CLI."""

import redis.exceptions
import sqlalchemy.exc

from app.kit.unreachable import unreachable_service


def _raised_from(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as error:
            raise RuntimeError("while doing something else") from error
    except RuntimeError as wrapped:
        return wrapped


def test_redis_and_database_errors_name_their_server_even_when_wrapped() -> None:
    down = redis.exceptions.ConnectionError("Connection refused")
    found = unreachable_service(_raised_from(down))
    assert found is not None and found.service == "redis" and found.cause is down

    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, OSError("server closed"))
    found = unreachable_service(_raised_from(lost))
    assert found is not None and found.service == "database"


def test_connection_errors_of_anything_else_are_not_blamed_on_the_database() -> None:
    mail_server_down = ConnectionRefusedError(111, "Connection refused")
    assert unreachable_service(_raised_from(mail_server_down)) is None
    assert unreachable_service(ValueError("bad input")) is None
    violated = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert unreachable_service(violated) is None
