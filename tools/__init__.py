"""Tooling beside the library: notebook runners, the README's table writer, reproducibility and browser
checks, benchmarks and the stress loop. Nothing here shapes a figure, so none of it is in the figures'
provenance (which hashes ``asam_lib/`` only); a command that writes a table of ``results/`` itself
(``sequential_causes``) records its own source in that table's sidecar."""
