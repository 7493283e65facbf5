"""marshmallow schemas for what wastatus relies on in a webhook; everything else passes.

Unknown fields are excluded, never rejected: Meta adds fields without notice.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

STATUS_VALUES = ("sent", "delivered", "read", "played", "failed", "deleted", "warning")
"""Status values Meta documents (Cloud) or sends (On-Premises)."""


def ascii_digits(text: str) -> int | None:
    """The number `text` spells in ASCII digits (spaces around allowed), else None."""
    text = text.strip(" ")
    return int(text) if text.isascii() and text.isdigit() else None


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
_OPTIONAL_STRINGS = ("recipient_id", "recipient_participant_id", "biz_opaque_callback_data")
_OPTIONAL_OBJECTS = ("conversation", "pricing")


def plainly_valid_status(raw: object) -> bool:
    """True for a status that did not fail and that StatusSchema accepts as it is.

    Nine in ten statuses are sent/delivered/read and only need counting; this check accepts
    nothing the schema would refuse (a property test holds it to that) and sends everything
    else, failures included, through the schema.
    """
    if type(raw) is not dict:
        return False
    status = raw.get("status")
    if type(status) is not str or status not in NOT_FAILED:
        return False
    message_id, timestamp = raw.get("id"), raw.get("timestamp")
    if not (type(message_id) is str and message_id):
        return False
    if type(timestamp) is str:
        timestamp = ascii_digits(timestamp)
        if timestamp is None or timestamp >= WholeNumber.limit:
            return False
    elif type(timestamp) is not int or not 0 <= timestamp < WholeNumber.limit:
        return False
    if raw.get("errors"):
        return False
    return all(raw.get(key) is None or type(raw[key]) is str for key in _OPTIONAL_STRINGS) and all(
        raw.get(key) is None or type(raw[key]) is dict for key in _OPTIONAL_OBJECTS
    )


__all__ = [
    "ERROR",
    "INBOUND_MESSAGE",
    "STATUS",
    "STATUS_VALUES",
    "ValidationError",
    "plainly_valid_status",
]
