"""Template filters for figures the pages show the same way everywhere."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    """A share as a percentage to one decimal, without a trailing ".0": 0.95 → "95 %", 0.9668 → "96.7 %"."""
    if value is None or value == "":
        return "n/a"
    return f"{round(float(value) * 100, 1):g} %"
