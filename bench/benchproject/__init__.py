"""The benchmark's Django project: the demo's settings with the pieces under test swapped per server."""
