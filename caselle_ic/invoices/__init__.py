"""Caselle -> IC: the statement extract to the quoted pipe-delimited invoice file.

Owns: ``checks`` (read and check the extract, the rejects), ``parse`` (text -> typed columns),
``build`` (records from checked statements), ``messages`` (the general message split),
``columns`` (the extract's columns, Arrow helpers), ``writer`` (exact bytes), ``pipeline`` (one run).
May import: ``config``, ``tabular``, ``schemas``, ``caselle_ic.errors``, ``caselle_ic.result``.
"""
