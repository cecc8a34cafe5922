"""The daily audit (SPEC §11, ``caselle-ic audit``): prove, three ways, that every payment
of a day landed in Caselle exactly once.

Owns: ``compare`` (pure functions: the three sides in, discrepancies out; the checks per kind
in ``receipts`` and ``lockbox``, the vocabulary in ``discrepancy``), ``totals`` (the totals table),
``sources`` (gathering the sides: export rows, the ledger, Caselle's receipts, the lockbox
files on disk), ``report`` (the CSV and the summary), ``pipeline`` (one audit run).
May import: ``config``, ``tabular``, ``schemas``, ``store``, ``connect``, ``payments``, the
core modules. An audit reads; it never sends a mutation.
"""
