"""For every test: a developer's .env (read by `make run` and the CLI) must not reach the tests."""

import os

from attribution.config import ENV_FILE_VARIABLE

os.environ[ENV_FILE_VARIABLE] = ""
