"""Caselle Connect: the GraphQL documents, answer models, auth, transport and the client.

Owns: ``documents`` (GraphQL documents, validation), ``models`` (strict answer models and
the receipt checks), ``auth``, ``transport`` (bounded HTTP, the error map), ``executor``
(validate, send, retry, fail over), ``batches`` (aliased batches), ``client``
(``CaselleClient``) and ``fake`` (an in-process transport for tests).
May import: ``config``, ``tabular``, ``schemas``, ``caselle_ic.errors``.
"""
