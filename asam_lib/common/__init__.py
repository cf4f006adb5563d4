"""Plumbing every layer uses: absolute paths, the shared artefact cache, seeding, progress bars, provenance of
figures and tables, and notebook parameters. Imports nothing else of ``asam_lib``."""
