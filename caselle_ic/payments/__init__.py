"""IC -> Caselle: the payments export, payment codes (setting 131), Data Pump posting exactly
once, voids, the lockbox file and the reconciliation report.

Owns: ``export``, ``codes``, ``posting``, ``lockbox``, ``reconcile``, ``pipeline``. May import:
``config``, ``tabular``, ``schemas``, ``store``, ``connect``, the core modules.
"""
