"""Mechanisms shared by every layer: no keck-top imports above this package.

One home each: URL checks and origins (``urls``), time parsing (``timeparse``), bounded
reading of outside documents (``bounded``), the HTTP JSON client (``http``), the background
loop (``bgloop``), number formatters (``formatting``), plain-text tables (``table``), row ids
(``ids``), terminal-safe text (``text``) and safe file creation (``safefile``). Modules here
import only the standard library and third-party libraries (aiohttp); never textual, rich
or argparse.
"""
