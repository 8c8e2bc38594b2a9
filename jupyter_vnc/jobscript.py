"""Rendering the job script: Jinja2 with a ``quote`` filter, or batchspawner's old ``{var}`` style."""

from __future__ import annotations

import functools
import shlex
from typing import Any

import jinja2
from batchspawner.batchspawner import format_template

_ENV = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["quote"] = lambda value: shlex.quote(str(value))


@functools.lru_cache(maxsize=16)
def _compiled(template: str) -> jinja2.Template:
    # Compiling costs ~4 ms of the hub's event loop; a burst of 50 spawns would pay it 50 times.
    return _ENV.from_string(template)


def render(template: str, **subvars: Any) -> str:
    """Render a job script template. A Jinja2 template (``{{ }}``/``{% %}``) gets the ``quote``
    filter and fails loudly on an undefined variable; a site's older ``{var}`` template is formatted
    the way batchspawner always did."""
    if "{{" in template or "{%" in template:
        return _compiled(template).render(**subvars)
    return format_template(template, **subvars)
