"""Sphinx configuration of jupyter-vnc's documentation (MyST Markdown, as JupyterHub's).

Build it (devstack/test does, with warnings as errors):

    sphinx-build -W --keep-going -b html docs /tmp/jupyter-vnc-docs
"""

import sys
from pathlib import Path

here = Path(__file__).parent
sys.path.insert(0, str(here / "_ext"))

from jupyter_vnc import __version__  # noqa: E402 - after the path setup above

project = "jupyter-vnc"
author = "the jupyter-vnc contributors"
copyright = "the jupyter-vnc contributors, BSD-3-Clause"
version = release = __version__

extensions = [
    "myst_parser",
    # autodoc-traits (autoconfigurable), with the reference's own filter and example check
    "traits_reference",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

exclude_patterns = ["_build", "_ext", "screenshots/README*", "Thumbs.db", ".DS_Store"]
root_doc = "index"
# Help texts and commands are shown as written: no curly quotes, no "--" turned into a dash.
smartquotes = False

# The reference shows each trait's own help, not docstrings inherited from batchspawner's classes.
autodoc_inherit_docstrings = False
autodoc_member_order = "alphabetical"
autodoc_class_signature = "separated"
# Every trait of this package shows an example (a build error without); its help is plain text.
traits_reference_package = "jupyter_vnc"
# batchspawner's SlurmSpawner traits whose default VNCSlurmSpawner replaces say so.
traits_reference_subclasses = ["jupyter_vnc.spawner.VNCSlurmSpawner"]
autodoc_default_options = {"exclude-members": "__init__, __new__"}

html_theme = "alabaster"
html_title = f"jupyter-vnc {__version__}"
html_theme_options = {
    "description": "GPU desktops in the browser for JupyterHub users on Slurm",
    "page_width": "1100px",
    "sidebar_width": "240px",
    "fixed_sidebar": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_static_path: list[str] = []
