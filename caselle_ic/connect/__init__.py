"""Caselle Connect: the GraphQL documents, answer models, auth, transport and the client.

Owns: ``client``. May import: ``config``, ``tabular``, ``schemas``, ``caselle_ic.errors``.
"""
