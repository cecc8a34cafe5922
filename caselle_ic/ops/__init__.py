"""Running the service: inbox pickup, deployments and schedules, the local Prefect server,
and the demo.

Owns: ``inbox`` (with ``inbox_scan`` and ``inbox_report``), ``deploy``, ``prefect_server``,
``demo``. May import everything below it, including ``flows``.
"""
