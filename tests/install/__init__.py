"""The install from scratch: a fresh virtual environment with the README's user install."""
