"""pytest plugin (entry point ``pytest11``): fixtures for testing bearer-authenticated consumers.

Active only where pytest-django is installed.
"""
