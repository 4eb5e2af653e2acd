"""A guard around `pulumi.dynamic`'s provider serialization, which leaks one wrapper per resource.

`pulumi.dynamic.dynamic.serialize_provider` (pulumi 3.223) sorts dictionaries by wrapping
`pickle._Pickler._batch_setitems` on every call and never puts the original back. Each dynamic
resource therefore adds one more layer around the previous ones: serializing the N-th resource
goes through N wrappers (quadratic program time) and past about a thousand dynamic resources
(500 pipelines with one schedule each) the program dies with RecursionError. Restoring the
original before each dynamic resource is registered keeps exactly one layer, and the same sorted
output.
"""

from __future__ import annotations

import pickle

# Taken when this module is first imported: before the program registers any dynamic resource.
_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]


def reset_pickler() -> None:
    """Undo the wrappers earlier dynamic resources left on the pure-Python pickler."""
    pickle._Pickler._batch_setitems = _BATCH_SETITEMS  # type: ignore[attr-defined]
