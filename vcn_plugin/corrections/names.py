"""Identity names: the reserved labels, the clustering's automatic ``person_NN`` names, and a person's own."""
from __future__ import annotations

import re
from collections.abc import Iterable

from vcn_plugin.fo import schema

#: labels that are no identity: a correction cannot name a person like this
RESERVED_LABELS = (schema.FACE_LABEL, schema.UNKNOWN, schema.NOT_FACE)
#: labels excluded from clustering when a user sets them
EXCLUDED_LABELS = (schema.UNKNOWN, schema.NOT_FACE)
#: names the clustering gives: ``person_NN``, prefixed ``<video stem>/`` when videos are clustered apart
AUTO_NAME = re.compile(r"^(?P<prefix>.*/)?person_(?P<number>\d+)$")


def is_user_name(name: str) -> bool:
    """A name a person gave (it sticks through re-clustering), not ``person_NN`` or a reserved label."""
    return name not in RESERVED_LABELS and AUTO_NAME.match(name) is None


def next_free_name(names: Iterable[str], prefix: str = "") -> str:
    """``<prefix>person_NN`` one above the highest number in use with that prefix (two digits at least)."""
    numbers = [int(m["number"]) for m in map(AUTO_NAME.match, names) if m and (m["prefix"] or "") == prefix]
    return f"{prefix}person_{max(numbers, default=0) + 1:02d}"
