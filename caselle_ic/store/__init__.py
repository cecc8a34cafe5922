"""The ledger database: one engine factory, one numbered migration list, and the tables the
runs keep (payments, lockbox files, run leases, paperless changes, inbox claims).

Owns: ``ledger`` (engines, migrations, tables), ``payments`` (PaymentBook: every query the
posting engine makes). May import: ``config``, ``tabular``, ``caselle_ic.errors``.
"""
