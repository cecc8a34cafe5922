"""Prefect flows: thin orchestration over the plain functions of ``caselle_ic``.

Importing this package (a worker or ``serve`` loading any flow) installs the log
redaction of :mod:`caselle_ic.logsafe`; each flow adds its biller's secrets when it loads
the biller's configuration.
"""

from caselle_ic.logsafe import install_redaction

install_redaction()
