"""The body of every error the API answers, and where the API lives.

Apart from the DRF exception handler (``predictor.api.exceptions``) so that the middleware, which
answers some requests before any view, can use the same shape without importing DRF.
"""

from __future__ import annotations

from predictor.api.strictjson import encodable

API_PREFIX = "/api/"


def _encodable_detail(detail):
    """Every key and string of an error detail through :func:`encodable`; ErrorDetails kept when clean."""
    if isinstance(detail, dict):
        return {encodable(key) if isinstance(key, str) else key: _encodable_detail(v) for key, v in detail.items()}
    if isinstance(detail, list):
        return [_encodable_detail(item) for item in detail]
    if isinstance(detail, str):
        return encodable(detail)
    return detail


def error_body(status_code: int, code: str, message: str, fields=None) -> dict:
    error = {"status": status_code, "code": code, "message": encodable(message)}
    if fields is not None:
        error["fields"] = _encodable_detail(fields)
    return {"error": error}
