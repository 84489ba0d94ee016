"""dance: classify photos of Indian classical dance forms (or any small labelled image set)."""

__version__ = "0.1.0"
