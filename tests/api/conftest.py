"""The API tests' fixtures live in `tests/stack.py` (loaded for the whole suite by `tests/conftest.py`), so the
browser tests share the same session stack. The helpers stay importable from here."""

from tests.stack import (  # noqa: F401
                         SECRET,
                         Listener,
                         api_settings,
                         bearer,
                         free_port,
                         load_demo,
                         spawn,
                         start_api_in_process,
                         token_for,
                         wait_http,
)
