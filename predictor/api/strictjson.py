"""RFC 8259 JSON: Python's json module, minus the NaN and Infinity literals it accepts by default.

Shared by the API's parser and the prediction fast path, so both refuse exactly the same bodies.
Imports nothing from DRF, so either can use it without an import cycle.
"""

import json


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON; send a finite number")


def loads(text: str):
    """Parse JSON text; ``ValueError`` for invalid JSON, ``RecursionError`` when nested too deeply."""
    return json.loads(text, parse_constant=_reject_constant)
