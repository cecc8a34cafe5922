"""Small Caselle <-> IC synchronisations: paperless flags and the real-time balance (RTDR).

Owns: ``paperless``, ``balance``. May import: ``config``, ``tabular``, ``store``, ``connect``,
the core modules.
"""
