"""The biller file: TOML -> a frozen, validated model; secret references; setting IDs.

Owns: ``model`` (BillerConfig, load_config), ``settings`` (Setting, secret references),
``sections`` (the file's sections), ``tuning`` (``[posting]``, ``[performance]`` with their
environment overrides). May import: ``caselle_ic.errors``,
``caselle_ic.env``, ``caselle_ic.logsafe``. Nothing else in the package.
"""
