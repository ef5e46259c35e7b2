"""Internal conda package mirror and DMZ validation proxy."""

__version__ = "0.1.0"
