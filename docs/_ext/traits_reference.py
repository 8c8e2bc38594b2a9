"""The configuration reference's Sphinx extension, on top of autodoc-traits.

autodoc-traits' ``autoconfigurable`` lists every ``config=True`` trait of a class with its help and
default. This adds what an admin reading jupyter-vnc's reference needs:

- ``:traits-from: PACKAGE`` keeps the traits defined in that package's modules: VNCExtension would
  otherwise list all of Jupyter's application options, VNCSlurmSpawner all of JupyterHub's Spawner.
- Our help is plain text, as ``--help-all`` prints it (no reST markup is read into it), and its
  ``Example:`` becomes a code block holding a line of the configuration file.
- A default computed at run time is said to be computed, not shown as the type's empty value; a
  default too long to read (a whole job script) is cut. A base class's trait whose default a subclass
  in ``traits_reference_subclasses`` computes says so.
- A trait without help (batchspawner's subclasses redefine some without it) shows the help of the
  same trait in the nearest base class that has one.
- A trait of ``traits_reference_package`` whose help has no ``Example:`` is a warning, so an error
  under ``sphinx-build -W``.
"""

from __future__ import annotations

import importlib
import re
import warnings
from typing import Any, ClassVar

from autodoc_traits import ConfigurableDocumenter, TraitDocumenter
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from traitlets import HasTraits, TraitType, Undefined

logger = logging.getLogger(__name__)

LONGEST_DEFAULT = 72
_EXAMPLE = re.compile(r"\bExample:\s*")
_MARKUP = re.compile(r"([\\`*_|])")


def _in(module: str, package: str) -> bool:
    return bool(package) and (module == package or module.startswith(package + "."))


def defined_in(trait: TraitType, package: str) -> bool:
    """Whether ``trait`` is defined (not only inherited) in a module of ``package``."""
    return _in(getattr(getattr(trait, "this_class", None), "__module__", "") or "", package)


def default_source(cls: type[HasTraits], name: str) -> str:
    """The module of the class whose ``@default`` computes ``name`` on ``cls``; "" when static."""
    for klass in cls.__mro__:
        if (
            name in klass.__dict__.get("_trait_default_generators", {})
            or f"_{name}_default" in klass.__dict__
        ):
            return klass.__module__
        if isinstance(klass.__dict__.get(name), TraitType):
            return ""  # (re)defined here with a static default
    return ""


def help_of(cls: type, name: str) -> str:
    """The trait's help, or the help of the same trait in the nearest base class that has one."""
    for klass in cls.__mro__:
        trait = klass.__dict__.get(name)
        if isinstance(trait, TraitType) and trait.help:
            return trait.help
    return ""


def _import(dotted: str) -> Any:
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return None


class ReferenceDocumenter(ConfigurableDocumenter):
    option_spec: ClassVar[dict[str, Any]] = {
        **ConfigurableDocumenter.option_spec,
        "traits-from": directives.unchanged_required,
    }

    def get_object_members(self, want_all: bool) -> Any:
        # Helpless traits take their base class's help, so autodoc-traits neither warns about them nor
        # writes "No help string is provided." into them.
        for name, trait in self.object.class_traits(config=True).items():
            if not trait.help:
                trait.help = trait.__doc__ = help_of(self.object, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return super().get_object_members(want_all)

    def filter_members(self, members: Any, want_all: bool) -> list[tuple[str, Any, bool]]:
        kept = super().filter_members(members, want_all)
        package = self.options.get("traits-from")
        if package:
            kept = [m for m in kept if not isinstance(m[1], TraitType) or defined_in(m[1], package)]
        checked = self.config.traits_reference_package
        for name, member, _ in kept:
            lacks_example = not _EXAMPLE.search(getattr(member, "help", "") or "")
            if isinstance(member, TraitType) and defined_in(member, checked) and lacks_example:
                logger.warning(
                    "%s.%s: its help has no 'Example:' (every trait an admin sets shows one)",
                    self.object.__name__, name, type="traits_reference", subtype="example",
                )  # fmt: skip
        return kept


class ReferenceTraitDocumenter(TraitDocumenter):
    def add_directive_header(self, sig: str) -> None:
        trait = self.object
        kind = type(trait).__name__
        if isinstance(self.parent, type) and default_source(self.parent, self.objpath[-1]):
            shown = f"{kind}()"
        else:
            value = "" if trait.default_value is Undefined else repr(trait.default_value)
            if len(value) > LONGEST_DEFAULT:
                value = value[: LONGEST_DEFAULT - 4] + "...'"
            shown = f"{kind}({value})"
        config = trait.metadata.get("config")
        self.options.annotation = f"c.{self.format_name()} = {shown}" if config else shown
        # AttributeDocumenter's header; autodoc-traits' own would set the annotation again.
        super(TraitDocumenter, self).add_directive_header(sig)


def _plain(text: str) -> str:
    """Help as plain text in reST: markup characters escaped, each paragraph on one line."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(_MARKUP.sub(r"\\\1", " ".join(p.split())) for p in paragraphs)


def _example_line(example: str, class_name: str, trait_name: str) -> str:
    example = " ".join(example.split())
    return example if example.startswith("c.") else f"c.{class_name}.{trait_name} = {example}"


def render_help(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """A trait's documentation: its help, notes on its default, its example as code."""
    if not isinstance(obj, TraitType):
        return
    class_path, _, trait_name = name.rpartition(".")
    owner = _import(class_path)
    if not isinstance(owner, type):
        return
    package = app.config.traits_reference_package
    notes = []
    if default_source(owner, trait_name):
        notes.append("*Default computed when not set (see above).*")
    if not defined_in(obj, package):
        for sub in filter(None, map(_import, app.config.traits_reference_subclasses)):
            if sub is not owner and issubclass(sub, owner) and _in(default_source(sub, trait_name), package):
                notes.append(f"*{sub.__name__} sets its own default:* :ref:`changed-defaults`.")
        if notes:
            lines += ["", *notes]
        return  # others' help is reST, as their own docs render it
    found = list(_EXAMPLE.finditer(obj.help or ""))
    text, example = (
        (obj.help, "") if not found else (obj.help[: found[-1].start()], obj.help[found[-1].end() :])
    )
    out = _plain(text).splitlines()
    for note in notes:
        out += ["", note]
    if example:
        out += ["", ".. code-block:: python", "", "   " + _example_line(example, owner.__name__, trait_name)]
    lines[:] = out


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("autodoc_traits")
    app.add_autodocumenter(ReferenceDocumenter, override=True)
    app.add_autodocumenter(ReferenceTraitDocumenter, override=True)
    # The package whose traits must each show an example, and whose help is plain text.
    app.add_config_value("traits_reference_package", "", "env")
    # Subclasses whose own defaults are noted at their base class's traits (VNCSlurmSpawner at
    # batchspawner's SlurmSpawner); the note links to the label "changed-defaults".
    app.add_config_value("traits_reference_subclasses", [], "env")
    app.connect("autodoc-process-docstring", render_help)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
