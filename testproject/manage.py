#!/usr/bin/env python
"""The demo project's manage.py; runs from any directory."""

import os
import sys
from pathlib import Path

# The repository root holds both the `testproject` package and `channels_bearer`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
