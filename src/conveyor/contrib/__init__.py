"""Integrations with other libraries, each in its own module and behind its own extra."""
