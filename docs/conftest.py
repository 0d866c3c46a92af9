"""pytest runs every page of the guide as a doctest (``--doctest-glob`` in pyproject.toml)."""

import importlib.util

# conf.py configures Sphinx; it has no examples, and importing it as a test module would
# put the checkout on sys.path twice.
collect_ignore = ["conf.py"]

# The Dask page needs the optional dependencies of ``pip install ".[dask]"``.
if not all(importlib.util.find_spec(name) for name in ("dask", "distributed")):
    collect_ignore_glob = ["guide/dask.rst"]
