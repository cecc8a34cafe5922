"""Tables in and out: reading CSV as Arrow strings, exact money and text values, atomic
output files with rejects, column work on threads.

Owns: ``csvin``, ``values``, ``output``, ``parallel``, ``memory`` (the Arrow allocator).
May import: ``caselle_ic.errors``.
"""
