"""svbench: what speaker-verification models cost the planet, measured."""

__version__ = "0.1.0"
