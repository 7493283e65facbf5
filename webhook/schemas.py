"""marshmallow schemas for what wastatus relies on in a webhook; everything else passes.

Unknown fields are excluded, never rejected: Meta adds fields without notice.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

STATUS_VALUES = ("sent", "delivered", "read", "played", "failed", "deleted", "warning")
"""Status values Meta documents (Cloud) or sends (On-Premises)."""


MAX_DIGITS = 30
"""More digits than any number here needs (2**63 has 19, leading zeros aside); Python refuses
to convert strings of over 4,300 digits, and a number that long is invalid anyway."""


def ascii_digits(text: str) -> int | None:
    """The number `text` spells in ASCII digits (spaces around allowed), else None."""
    text = text.strip(" ")
    if len(text) > MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


class WholeNumber(fields.Field):
    """A non-negative whole number given as an integer or a string of digits, never 1.5."""

    default_error_messages = {"invalid": "Not a whole number."}
    limit = 2**63

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and (digits := ascii_digits(value)) is not None:
            number = digits
        else:
            raise self.make_error("invalid")
        if not 0 <= number < self.limit:
            raise self.make_error("invalid")
        return number


class Timestamp(WholeNumber):
    """Unix seconds, sent by Meta as a string of digits."""

    default_error_messages = {"invalid": "Not a unix timestamp in seconds."}


class ErrorCode(WholeNumber):
    """Meta's error codes are integers; some providers send them as strings."""

    default_error_messages = {"invalid": "Not an integer error code."}
    limit = 10**9


class Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class ErrorSchema(Lenient):
    code = ErrorCode(required=True)
    title = fields.String(load_default=None, allow_none=True)
    message = fields.String(load_default=None, allow_none=True)
    details = fields.String(load_default=None, allow_none=True)
    error_data = fields.Dict(load_default=None, allow_none=True)
    href = fields.String(load_default=None, allow_none=True)


class StatusSchema(Lenient):
    id = fields.String(required=True, validate=validate.Length(min=1))
    status = fields.String(required=True, validate=validate.OneOf(STATUS_VALUES))
    timestamp = Timestamp(required=True)
    recipient_id = fields.String(load_default=None, allow_none=True)
    recipient_participant_id = fields.String(load_default=None, allow_none=True)
    biz_opaque_callback_data = fields.String(load_default=None, allow_none=True)
    conversation = fields.Dict(load_default=None, allow_none=True)
    pricing = fields.Dict(load_default=None, allow_none=True)
    errors = fields.List(fields.Nested(ErrorSchema), load_default=list)


class InboundMessageSchema(Lenient):
    """An inbound message: only its errors matter here (unsupported type and the like)."""

    id = fields.String(load_default=None, allow_none=True)
    from_ = fields.String(data_key="from", load_default=None, allow_none=True)
    timestamp = Timestamp(load_default=None, allow_none=True)
    errors = fields.List(fields.Nested(ErrorSchema), load_default=list)


STATUS = StatusSchema()
ERROR = ErrorSchema()
INBOUND_MESSAGE = InboundMessageSchema()

NOT_FAILED = frozenset(STATUS_VALUES) - {"failed"}
FAILED = frozenset({"failed"})
_OPTIONAL_STRINGS = ("recipient_id", "recipient_participant_id", "biz_opaque_callback_data")
_OPTIONAL_OBJECTS = ("conversation", "pricing")
_ERROR_STRINGS = ("title", "message", "details", "href")

# The cheap checks below stand in for marshmallow on the hot path: a webhook of one status
# costs more in marshmallow than in everything else the view does. They accept only plain,
# common shapes and send everything else through the schemas; property tests hold them to
# accept nothing the schemas refuse and to load exactly what the schemas load.


def _whole_number(value: object, limit: int) -> int | None:
    """`WholeNumber`'s reading of `value`, or None where it would refuse (bools included)."""
    if type(value) is str:
        value = ascii_digits(value)
    if type(value) is int and 0 <= value < limit:
        return value
    return None


def _plain_optionals(raw: dict, strings: tuple[str, ...], objects: tuple[str, ...]) -> bool:
    """True when each optional field is absent, null, or of the type its schema field wants."""
    for key in strings:
        value = raw.get(key)
        if value is not None and type(value) is not str:
            return False
    for key in objects:
        value = raw.get(key)
        if value is not None and type(value) is not dict:
            return False
    return True


def _plain_status_fields(raw: object, statuses: frozenset[str]) -> int | None:
    """The timestamp of a status whose own fields StatusSchema accepts, else None."""
    if type(raw) is not dict:
        return None
    status, message_id = raw.get("status"), raw.get("id")
    if type(status) is not str or status not in statuses:
        return None
    if not (type(message_id) is str and message_id):
        return None
    if not _plain_optionals(raw, _OPTIONAL_STRINGS, _OPTIONAL_OBJECTS):
        return None
    return _whole_number(raw.get("timestamp"), WholeNumber.limit)


def plainly_valid_status(raw: object) -> bool:
    """True for a status that did not fail, carries no errors, and StatusSchema accepts.

    Nine in ten statuses are sent/delivered/read and only need counting.
    """
    if _plain_status_fields(raw, NOT_FAILED) is None:
        return False
    errors = raw.get("errors", [])
    return type(errors) is list and not errors


def _plain_error(raw: object) -> dict | None:
    """What ErrorSchema loads from `raw`, for plain errors; None sends it to the schema."""
    if type(raw) is not dict:
        return None
    code = _whole_number(raw.get("code"), ErrorCode.limit)
    if code is None or not _plain_optionals(raw, _ERROR_STRINGS, ("error_data",)):
        return None
    error = {key: raw.get(key) for key in _ERROR_STRINGS}
    error["code"] = code
    error["error_data"] = None if raw.get("error_data") is None else dict(raw["error_data"])
    return error


def plain_failed_status(raw: object) -> dict | None:
    """What StatusSchema loads from a plain failed status; None sends it to the schema."""
    timestamp = _plain_status_fields(raw, FAILED)
    if timestamp is None or type(errors := raw.get("errors", [])) is not list:
        return None
    loaded_errors = [_plain_error(error) for error in errors]
    if None in loaded_errors:
        return None
    status = {key: raw.get(key) for key in _OPTIONAL_STRINGS}
    for key in _OPTIONAL_OBJECTS:
        status[key] = None if raw.get(key) is None else dict(raw[key])
    status |= {"id": raw["id"], "status": "failed", "timestamp": timestamp}
    status["errors"] = loaded_errors
    return status


__all__ = [
    "ERROR",
    "INBOUND_MESSAGE",
    "STATUS",
    "STATUS_VALUES",
    "ValidationError",
    "plain_failed_status",
    "plainly_valid_status",
]
