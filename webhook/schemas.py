"""marshmallow schemas for what wastatus relies on in a webhook; everything else passes.

Unknown fields are excluded, never rejected: Meta adds fields without notice.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

STATUS_VALUES = ("sent", "delivered", "read", "played", "failed", "deleted", "warning")
"""Status values Meta documents (Cloud) or sends (On-Premises)."""


class WholeNumber(fields.Field):
    """A non-negative whole number given as an integer or a string of digits, never 1.5."""

    default_error_messages = {"invalid": "Not a whole number."}
    limit = 2**63

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            number = int(value)
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


class MetadataSchema(Lenient):
    display_phone_number = fields.String(load_default=None, allow_none=True)
    phone_number_id = fields.String(load_default=None, allow_none=True)


class ChangeSchema(Lenient):
    field = fields.String(required=True)
    value = fields.Dict(load_default=dict)


class EntrySchema(Lenient):
    id = fields.String(load_default=None, allow_none=True)
    changes = fields.List(fields.Dict(), load_default=list)


class CloudEnvelopeSchema(Lenient):
    object = fields.String(required=True)
    entry = fields.List(fields.Dict(), required=True)


STATUS = StatusSchema()
ERROR = ErrorSchema()
INBOUND_MESSAGE = InboundMessageSchema()
METADATA = MetadataSchema()
CHANGE = ChangeSchema()
ENTRY = EntrySchema()
CLOUD_ENVELOPE = CloudEnvelopeSchema()

__all__ = [
    "CHANGE",
    "CLOUD_ENVELOPE",
    "ENTRY",
    "ERROR",
    "INBOUND_MESSAGE",
    "METADATA",
    "STATUS",
    "STATUS_VALUES",
    "ValidationError",
]
