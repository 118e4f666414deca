"""Settings for the daphne/uvicorn processes that the server tests start.

The demo project's settings, plus:
  BEARER_TEST_SETTINGS  JSON merged into CHANNELS_BEARER (e.g. {"REFUSAL": "close"})
and the test backend that accepts tokens no browser could send raw.
"""

import json
import os

from testproject.settings import *  # noqa: F403
from testproject.settings import CHANNELS_BEARER

CHANNELS_BEARER = {
    **CHANNELS_BEARER,
    "BACKENDS": [*CHANNELS_BEARER["BACKENDS"], "tests.backends.PassphraseBackend"],
}
CHANNELS_BEARER.update(json.loads(os.environ.get("BEARER_TEST_SETTINGS", "{}")))

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # DEBUG everywhere: the tests read the whole log and look for token text.
    "root": {"handlers": ["console"], "level": "DEBUG"},
}
