"""A JSON parser that enforces the body size limit and rejects NaN and Infinity."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from predictor.api import strictjson
from predictor.api.exceptions import PayloadTooLarge


class StrictJSONParser(JSONParser):
    """RFC 8259 JSON only, and no larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE``.

    DRF reads the request stream directly, which bypasses Django's own size check on
    ``request.body``; so the limit is enforced here, reading at most one byte past it.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge()
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            return strictjson.loads(raw.decode(encoding))
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ParseError(f"JSON parse error - {exc}") from None
