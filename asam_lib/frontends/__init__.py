"""The ways in from outside: the command line (``python -m asam_lib``), its launchers and preflight checks, and
EasyEdit's multimodal front door. The top layer: nothing imports it but ``asam_lib.__main__``."""
