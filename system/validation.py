"""Validation of client input. Every problem is a :class:`BadRequest` naming it."""

from __future__ import annotations

__all__ = ["BadRequest", "MAX_KEY_BYTES", "MAX_VALUE_BYTES", "check_key", "check_value",
           "check_node_id"]

MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1024 * 1024


class BadRequest(Exception):
    """A client error: ``status`` (4xx) and a message that names the problem."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_key(key: object) -> str:
    if not isinstance(key, str):
        raise BadRequest(f"'key' must be a string, got {type(key).__name__}")
    if not key:
        raise BadRequest("'key' must not be empty")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise BadRequest(f"'key' is {size} bytes; the limit is {MAX_KEY_BYTES}")
    if key.isascii() and key.isprintable():  # the usual key: none of the checks below apply
        return key
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise BadRequest("'key' must not contain control characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise BadRequest("'key' must be valid UTF-8 (no lone surrogates)")
    return key


def check_value(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"'value' must be a string, got {type(value).__name__}")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_VALUE_BYTES:
        raise BadRequest(f"'value' is {size} bytes; the limit is {MAX_VALUE_BYTES}", status=413)
    return value


def check_node_id(node_id: object) -> str:
    if not isinstance(node_id, str) or not node_id or len(node_id) > 64:
        raise BadRequest("'id' must be a non-empty string of at most 64 characters")
    if not all(c.isalnum() or c in "-_." for c in node_id):
        raise BadRequest("'id' may contain only letters, digits, '-', '_' and '.'")
    return node_id
