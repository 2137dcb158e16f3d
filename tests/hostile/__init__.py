"""Hostile peers, documents and files: the attacker's side of the trust tests (issue 12).

Reusable by any test: ``documents`` builds bad keck-top/1 documents; the
servers and files are added beside it as the sources that read them are hardened.
"""
