"""YAML from users' files, with limits: a file size, a number of aliases, and the size they expand to.

`yaml.safe_load` builds an alias bomb ("billion laughs": nine anchors, each nine aliases of the
one before) as shared references in a few kilobytes, and whatever walks the result (validation,
JSON) then expands it to gigabytes. `load_all` refuses such a document before it is constructed:
at most `max_aliases` aliases, and at most `max_bytes` nodes once every alias is expanded (more
than any file of `max_bytes` could hold without aliases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

#: the defaults of `ATOM_YAML_MAX_BYTES` and `ATOM_YAML_MAX_ALIASES` (control.settings)
MAX_BYTES = 8 * 1024**2
MAX_ALIASES = 1000
#: nesting deeper than this is refused (the composer itself recurses once per level)
MAX_DEPTH = 500


class YamlTooLarge(yaml.YAMLError):
    """A YAML file over a limit: too large, too many aliases, or too large once they are expanded."""


def _limited_loader(max_aliases: int, max_nodes: int) -> type[yaml.SafeLoader]:
    class Limited(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Node | None, index: Any) -> Node | None:
            if self.check_event(AliasEvent):
                self.aliases += 1
                if self.aliases > max_aliases:
                    raise YamlTooLarge(
                        f"uses more than {max_aliases} aliases (*name), the most allowed "
                        "(ATOM_YAML_MAX_ALIASES): is it an alias bomb?"
                    )
            return super().compose_node(parent, index)

        def compose_document(self) -> Node | None:
            node = super().compose_document()
            if node is not None:
                size = expanded_size(node, max_nodes)
                if size > max_nodes:
                    raise YamlTooLarge(
                        f"expands to more than {max_nodes} values once its aliases are followed "
                        "(ATOM_YAML_MAX_BYTES): is it an alias bomb?"
                    )
            return node

    return Limited


def expanded_size(root: Node, cap: int) -> int:
    """How many nodes `root` holds with every alias expanded; stops counting past `cap`.

    Each node is visited once (sizes are memoized by identity), so a bomb costs what its text costs.
    """
    sizes: dict[int, int] = {}

    def size(node: Node, depth: int = 0) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            return cap + 1  # deeper than any spec: refuse rather than recurse
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
                if total > cap:
                    break
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                total += size(key, depth + 1) + size(value, depth + 1)
                if total > cap:
                    break
        sizes[id(node)] = total
        return total

    return size(root)


def load_all(text: str, *, max_bytes: int = MAX_BYTES, max_aliases: int = MAX_ALIASES) -> list[Any]:
    """Every document of `text`, within the limits.

    Raises:
        YamlTooLarge: the text is over `max_bytes`, uses more than `max_aliases` aliases, or
            expands to more than `max_bytes` nodes.
        yaml.YAMLError: the text is not YAML.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise YamlTooLarge(f"is {size} bytes, over the limit of {max_bytes} (ATOM_YAML_MAX_BYTES)")
    try:
        return list(yaml.load_all(text, Loader=_limited_loader(max_aliases, max_bytes)))  # noqa: S506
    except RecursionError:
        raise YamlTooLarge(f"nests values deeper than {MAX_DEPTH} levels") from None


def load(text: str, *, max_bytes: int = MAX_BYTES, max_aliases: int = MAX_ALIASES) -> Any:
    """The one document of `text` (None when empty), within the limits of `load_all`."""
    docs = load_all(text, max_bytes=max_bytes, max_aliases=max_aliases)
    if len(docs) > 1:
        raise yaml.YAMLError(f"expected one YAML document, found {len(docs)}")
    return docs[0] if docs else None


def read_text(path: Path, *, max_bytes: int = MAX_BYTES) -> str:
    """The file's text, refused before it is read when it is over `max_bytes`.

    Raises:
        YamlTooLarge: the file is over `max_bytes`.
        OSError: it cannot be read.
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlTooLarge(f"is {size} bytes, over the limit of {max_bytes} (ATOM_YAML_MAX_BYTES)")
    with path.open(encoding="utf-8") as f:
        text = f.read(max_bytes + 1)  # a file that grew since stat is still cut at the limit
    if len(text) > max_bytes:
        raise YamlTooLarge(f"is over the limit of {max_bytes} bytes (ATOM_YAML_MAX_BYTES)")
    return text
