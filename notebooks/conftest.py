"""nbval policy for the notebooks: stderr is never compared (warnings and progress bars go there)."""


def pytest_collectstart(collector):
    if collector.path.suffix == ".ipynb":
        collector.skip_compare = (*collector.skip_compare, "stderr")
