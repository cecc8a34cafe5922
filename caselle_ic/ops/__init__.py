"""Running the service: inbox pickup, deployments and schedules, the local Prefect server,
and the demo.

Owns: ``inbox``, ``deploy``, ``prefect_server``, ``demo``. May import everything below it,
including ``flows``.
"""
