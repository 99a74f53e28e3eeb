"""RFC 8259 JSON: Python's json module, minus the NaN and Infinity literals it accepts by default.

The API's parser uses it; and the rule for repeating parsed client text in an answer
(:func:`encodable`). Imports nothing from DRF, so any module can use it without an import cycle.
"""

import json


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON; send a finite number")


def loads(text: str):
    """Parse JSON text; ``ValueError`` for invalid JSON, ``RecursionError`` when nested too deeply."""
    return json.loads(text, parse_constant=_reject_constant)


def encodable(text: str) -> str:
    """``text`` with whatever UTF-8 cannot encode written as a backslash escape.

    Error messages and ``fields`` keys repeat client text (an unknown field's name, a bad choice),
    and JSON may carry a lone surrogate (``"\\ud800"``) that decodes into a str no encoder accepts:
    echoed as is, the renderer's 500. Escaped, the client reads back what it sent.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
