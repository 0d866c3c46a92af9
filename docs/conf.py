"""Sphinx configuration: the user guide (docs/guide) and the API reference from the docstrings."""

import sys
from pathlib import Path

# Build from a source checkout without installing: the package is one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ivfpq  # noqa: E402

project = "ivfpq"
release = version = ivfpq.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.autosummary"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autosummary_generate = False
exclude_patterns = ["_build", "conftest.py"]
html_theme = "alabaster"
html_static_path = []
