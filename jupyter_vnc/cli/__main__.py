"""``python -m jupyter_vnc.cli``: the admin CLI where the ``jupyter-vnc`` script is not on PATH."""

import sys

from . import main

if __name__ == "__main__":  # importing the module (docs, a package walk) must not run the CLI
    sys.exit(main())
