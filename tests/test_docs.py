"""The documentation builds: Sphinx turns every warning into an error.

The guide's examples and the docstrings' examples run as doctests (``--doctest-glob``
and ``--doctest-modules`` in pyproject.toml); this test checks that the pages and the API
reference generated from the docstrings still build.
"""

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


# Raised inside Sphinx's own napoleon extension, about Sphinx's internals; not ours to fix.
@pytest.mark.filterwarnings("ignore:The mapping interface for autodoc options")
def test_sphinx_builds_without_warnings(tmp_path):
    build = pytest.importorskip("sphinx.cmd.build")
    # -W: a warning (a broken reference, a malformed docstring) fails the build;
    # -E: no saved environment, so every page is read again.
    code = build.build_main(["-W", "--keep-going", "-E", "-q", "-b", "html", str(DOCS),
                             str(tmp_path / "html")])
    assert code == 0
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("ivfpq.KMeans", "ivfpq.IVFFlat", "ivfpq.io.read_vectors",
                 "ivfpq.plot.plot_score_over_time"):
        assert f'id="{name}"' in api, name
    for page in ("choosing", "large_k", "out_of_core", "dask", "indexes", "file_formats", "cli"):
        assert (tmp_path / "html" / "guide" / f"{page}.html").exists(), page
