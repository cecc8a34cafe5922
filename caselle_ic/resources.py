"""Files shipped inside the package: the sample biller, its inputs and golden outputs.

They live at the repo's top level (``data/samples/``, the design card) and reach the package
through the symlink ``caselle_ic/samples``; hatchling follows it, so an installed wheel has
them as real files. Read them through :data:`SAMPLES`, never through a path from the checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: data/samples/ as installed with the package (a checkout or a wheel alike).
SAMPLES = Path(str(files("caselle_ic").joinpath("samples")))

__all__ = ["SAMPLES"]
