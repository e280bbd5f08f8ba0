"""A Griffe extension for the reference: the code's reST roles become links.

The docstrings use Sphinx's roles (``:class:`Job```, ``:meth:`~smrun.run.Run.cancel```),
which Markdown would show as they are written. Each is resolved the way Python
would, from the object its docstring belongs to (its own members, inherited
ones, then its parents' scope and their imports), and becomes an optional
cross-reference: a link where the reference documents that object, plain
code where it doesn't (an engine-internal module), never a warning.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Alias, Extension, Object

ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|obj|exc):`(?P<text>[^`<]+)`")


def _scope_member(scope: Object, name: str) -> str | None:
    members = scope.members
    if scope.is_class:
        try:
            members = scope.all_members  # with the inherited ones
        except Exception:  # a base Griffe can't resolve (outside the package)
            pass
    member = members.get(name)
    if member is None:
        return None
    if isinstance(member, Alias) and not member.inherited:
        return member.target_path  # an import: where it is defined
    return member.path  # its own member, or one it inherits (documented under it)


def resolve(obj: Object, target: str) -> str:
    """The full path that ``target`` names in ``obj``'s docstring."""
    if target.startswith("smrun.") or target == "smrun":
        return target
    first, dot, rest = target.partition(".")
    scope: Object | None = obj
    while scope is not None:
        found = _scope_member(scope, first)
        if found is not None:
            return found + dot + rest
        scope = scope.parent
    return target


class Roles(Extension):
    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None or ":`" not in docstring.value:
            return

        def link(match: re.Match[str]) -> str:
            text = match["text"].strip()
            short = text.startswith("~")
            target = text.lstrip("~.")
            shown = target.rsplit(".", 1)[-1] if short else target
            return (f'<autoref identifier="{resolve(obj, target)}" optional>'
                    f"<code>{shown}</code></autoref>")

        docstring.value = ROLE.sub(link, docstring.value)
