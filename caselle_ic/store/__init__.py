"""The ledger database: one engine factory, one numbered migration list, and the tables the
runs keep (payments, lockbox files, run leases, paperless changes, inbox claims).

Owns: ``ledger`` (the engine factory, ``Ledger``), ``migrations`` (the numbered list),
``tables`` (the current schema), ``payments`` (PaymentBook: every query the
posting engine makes; its leases and claims in ``payment_claims``).
May import: ``config``, ``tabular``, ``caselle_ic.errors``.
"""
