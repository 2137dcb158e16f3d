"""keck-top: where a machine's power goes."""
__version__ = "0.1.0"
