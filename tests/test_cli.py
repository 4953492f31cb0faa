"""Commands say what to check when the database cannot be reached."""

import pytest

from portal.app import create_app
from tests.conftest import config_for_tests

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest.mark.parametrize(
    "args",
    [["territories", "export"], ["territories", "recompute"], ["demo", "load"]],
)
def test_an_unreachable_database_is_explained_in_one_sentence(args):
    app = create_app(config_for_tests(UNREACHABLE))

    result = app.test_cli_runner().invoke(args=args)

    assert result.exit_code == 1
    assert "The database could not be used" in result.output
    assert "Check DATABASE_URL" in result.output
    assert "Traceback" not in result.output
    assert "account_id" not in result.output
