"""Caselle -> IC: the statement extract to the quoted pipe-delimited invoice file.

Owns: ``build`` (read, check, build records), ``writer`` (exact bytes), ``pipeline`` (one run).
May import: ``config``, ``tabular``, ``schemas``, ``caselle_ic.errors``, ``caselle_ic.result``.
"""
