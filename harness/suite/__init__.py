"""From a suite file to cells: the schema and its YAML lines, training settings and profiles, search spaces,
which combinations can run, and the expansion into cells with their config hashes. Imports nothing of ``run/``."""
