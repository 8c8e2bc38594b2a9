"""``python -m jupyter_vnc.cli``: the admin CLI where the ``jupyter-vnc`` script is not on PATH."""

import sys

from . import main

sys.exit(main())
