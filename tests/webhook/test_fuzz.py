"""No input ever yields a 500: random JSON and random bytes, signed and valid or not."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import APP_SECRET, FIXTURES, app_env
from webhook import create_app
from webhook.signature import sign

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
# Near-valid payloads reach deeper into the schemas than random JSON does.
status_like = st.fixed_dictionaries(
    {
        "id": json_values,
        "status": st.sampled_from(["failed", "sent", "x"]) | json_values,
        "timestamp": json_values,
        "errors": st.lists(st.fixed_dictionaries({"code": json_values}), max_size=2) | json_values,
    },
)
near_valid = st.one_of(
    st.fixed_dictionaries({"statuses": st.lists(status_like, max_size=3) | json_values}),
    st.fixed_dictionaries(
        {
            "object": st.just("whatsapp_business_account") | json_values,
            "entry": st.lists(
                st.fixed_dictionaries(
                    {
                        "id": json_values,
                        "changes": st.lists(
                            st.fixed_dictionaries(
                                {
                                    "field": st.just("messages") | json_values,
                                    "value": st.fixed_dictionaries(
                                        {
                                            "statuses": st.lists(status_like, max_size=2),
                                            "errors": json_values,
                                            "metadata": json_values,
                                        }
                                    )
                                    | json_values,
                                }
                            ),
                            max_size=2,
                        )
                        | json_values,
                    }
                ),
                max_size=2,
            )
            | json_values,
        }
    ),
)

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def post_signed(client, body: bytes):
    return client.post(
        "/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, APP_SECRET)}
    )


class TestNoServerErrors:
    @FUZZ
    @given(document=json_values | near_valid)
    def test_signed_random_json_never_gets_a_500(self, redis, redis_url, document):
        """Any JSON document, signed, is answered 200 (stored or quarantined), never 5xx."""
        client = create_app(app_env(redis_url)).test_client()
        reply = post_signed(client, json.dumps(document).encode())
        assert reply.status_code == 200, reply.get_data(as_text=True)
        assert reply.is_json

    @FUZZ
    @given(body=st.binary(max_size=2000))
    def test_signed_random_bytes_never_get_a_500(self, redis, redis_url, body):
        """Arbitrary bytes, signed, are quarantined with a reason and answered 200."""
        client = create_app(app_env(redis_url)).test_client()
        reply = post_signed(client, body)
        assert reply.status_code == 200
        assert reply.is_json

    @FUZZ
    @given(
        body=st.binary(max_size=500),
        # what an HTTP header can carry: Latin-1 without control characters
        signature=st.text(st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=80),
    )
    def test_random_signatures_get_401_and_never_a_500(self, redis, redis_url, body, signature):
        """Garbage in the signature header is a plain 401."""
        client = create_app(app_env(redis_url)).test_client()
        reply = client.post("/webhook", data=body, headers={"X-Hub-Signature-256": signature})
        assert reply.status_code == 401

    def test_deeply_nested_json_is_quarantined_not_a_crash(self, redis, redis_url):
        """A body nested past the parser's recursion limit is a problem, not a 500."""
        client = create_app(app_env(redis_url)).test_client()
        reply = post_signed(client, b"[" * 100000 + b"]" * 100000)
        assert reply.status_code == 200
        assert reply.json["quarantined"]


# Statuses that are often valid, so the fast paths' acceptances get exercised too.
plain_text = st.none() | st.text(max_size=3)
mostly_valid_error = st.fixed_dictionaries(
    {
        "code": st.just(131049)
        | st.integers(-1, 10**9)
        | st.from_regex(r"\A ?[0-9]{1,10} ?\Z")
        | json_values
    },
    optional={
        "title": plain_text | json_values,
        "message": plain_text,
        "details": plain_text | st.integers(),
        "href": plain_text,
        "error_data": st.none() | st.dictionaries(st.text(max_size=3), json_values) | json_values,
        "extra": json_values,
    },
)
mostly_valid_status = st.fixed_dictionaries(
    {
        "id": st.just("wamid.A") | st.text(max_size=5) | json_values,
        "status": st.sampled_from(["sent", "delivered", "read", "failed", "deleted", "SENT"]),
        "timestamp": st.just("1700000000")
        | st.integers(-5, 2**64)
        | st.from_regex(r"\A\s?[0-9٠-٩]{0,20}\s?\Z")
        | st.just("0" * 40 + "1")
        | json_values,
    },
    optional={
        "recipient_id": st.none() | st.text(max_size=3) | st.integers(),
        "recipient_participant_id": plain_text | json_values,
        "errors": st.just([]) | st.lists(mostly_valid_error, max_size=3) | json_values,
        "conversation": st.none() | st.dictionaries(st.text(max_size=3), json_values),
        "pricing": st.none()
        | st.dictionaries(st.text(max_size=3), st.text(max_size=3))
        | st.text(),
        "biz_opaque_callback_data": st.none() | st.text(max_size=3) | st.booleans(),
        "type": json_values,
    },
)

# Failed statuses, mostly plain, so the failed fast path's loads get compared often.
plain_error = st.fixed_dictionaries(
    {"code": st.sampled_from([131049, "131026", 0, " 7 "])},
    optional={  # one wrong type now and then: the loader must send those to the schema
        "title": plain_text | st.integers(),
        "message": plain_text,
        "details": plain_text | st.booleans(),
        "href": plain_text,
        "error_data": st.none() | st.dictionaries(st.text(max_size=3), json_values) | st.text(),
        "extra": json_values,
    },
)
mostly_valid_failed = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["wamid.A", "wamid.B", ""]),
        "status": st.just("failed"),
        "timestamp": st.sampled_from(["1700000000", 1700000000, " 17 ", "1.5", 2**63]),
        "errors": st.lists(plain_error, min_size=1, max_size=2)
        | st.lists(mostly_valid_error, max_size=3)
        | json_values,
    },
    optional={
        "recipient_id": plain_text | st.integers(),
        "recipient_participant_id": plain_text,
        "conversation": st.none() | st.dictionaries(st.text(max_size=3), json_values),
        "pricing": st.none() | st.dictionaries(st.text(max_size=3), json_values) | st.text(),
        "biz_opaque_callback_data": plain_text | st.booleans(),
    },
)


def schema_load(status):
    """What StatusSchema makes of `status`, or the ValidationError it raises."""
    from webhook.schemas import STATUS, ValidationError

    try:
        return STATUS.load(status)
    except ValidationError as error:
        return error


class TestStatusFastPath:
    @settings(max_examples=600, deadline=None)
    @given(status=mostly_valid_status | status_like | json_values)
    def test_accepts_nothing_the_schema_refuses(self, status):
        """Whatever the cheap check lets through, StatusSchema loads with the same status."""
        from webhook.schemas import plainly_valid_status

        if plainly_valid_status(status):
            loaded = schema_load(status)
            assert isinstance(loaded, dict), f"fast path took what the schema refuses: {loaded}"
            assert loaded["status"] == status["status"] != "failed"

    @settings(max_examples=600, deadline=None)
    @given(status=mostly_valid_failed | mostly_valid_status | status_like | json_values)
    def test_failed_fast_path_loads_what_the_schema_loads(self, status):
        """A failed status the cheap loader takes comes out exactly as StatusSchema loads it."""
        from webhook.schemas import plain_failed_status

        loaded = plain_failed_status(status)
        if loaded is not None:
            assert loaded == schema_load(status)

    def test_takes_the_common_case(self):
        """A documented delivered status takes the fast path."""
        from webhook.schemas import plainly_valid_status

        assert plainly_valid_status(
            {
                "id": "wamid.A",
                "status": "delivered",
                "timestamp": "1700000000",
                "recipient_id": "16505551234",
                "pricing": {"category": "marketing"},
            }
        )

    def test_takes_the_common_failed_case(self):
        """A documented failed status (the fixture Meta's page shows) takes the fast path."""
        from webhook.schemas import plain_failed_status

        failed = json.loads((FIXTURES / "cloud" / "failed_131049.json").read_text())
        status = failed["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert plain_failed_status(status) == schema_load(status)
        assert plain_failed_status(status)["errors"][0]["code"] == 131049

    def test_errors_that_are_not_a_list_are_refused(self):
        """`errors: null` on a delivered status goes to the schema, which refuses it."""
        from webhook.schemas import plainly_valid_status

        for errors in (None, 0, "", {}, False):
            status = {"id": "wamid.A", "status": "sent", "timestamp": 1, "errors": errors}
            assert not plainly_valid_status(status)
            assert not isinstance(schema_load(status), dict)


class TestOverlongNumbers:
    def test_a_timestamp_of_5000_digits_is_quarantined_not_a_crash(self, redis, redis_url):
        """Python refuses to convert over 4,300 digits; that must be a problem, not a 500."""
        client = create_app(app_env(redis_url)).test_client()
        for status in ("sent", "failed"):
            body = json.dumps(
                {"statuses": [{"id": "wamid.A", "status": status, "timestamp": "9" * 5000}]}
            ).encode()
            reply = post_signed(client, body)
            assert reply.status_code == 200, reply.get_data(as_text=True)
            assert reply.json["quarantined"]


# Lone surrogates: `json.dumps` escapes them (`"\ud800"`), which is valid JSON that orjson
# refuses and `json` reads into a str no UTF-8 encoder takes.
# Hypothesis' text() never holds surrogates, so they are put in by hand.
lone_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
hostile_text = st.text(max_size=4) | st.builds(
    lambda head, surrogate, tail: head + surrogate + tail,
    st.text(max_size=3),
    lone_surrogate,
    st.text(max_size=3),
)
hostile_status = st.fixed_dictionaries(
    {
        "id": hostile_text | st.just("wamid.A"),
        "status": st.just("failed"),
        "timestamp": st.just("1700000000"),
        "errors": st.lists(
            st.fixed_dictionaries(
                {"code": st.just(131026)},
                optional={
                    "title": hostile_text,
                    "message": hostile_text,
                    "details": hostile_text,
                    "href": hostile_text,
                    "error_data": st.dictionaries(hostile_text, hostile_text, max_size=2),
                },
            ),
            min_size=1,
            max_size=2,
        ),
    },
    optional={
        "recipient_id": hostile_text,
        "recipient_participant_id": hostile_text,
        "biz_opaque_callback_data": hostile_text,
        "conversation": st.dictionaries(hostile_text, hostile_text, max_size=3),
        "pricing": st.dictionaries(hostile_text, hostile_text, max_size=3),
        "extra": st.dictionaries(hostile_text, hostile_text, max_size=2),
    },
)
hostile_cloud = st.builds(
    lambda statuses, field, metadata: {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": field, "value": {"statuses": statuses, "metadata": metadata}},
                ],
            }
        ],
    },
    st.lists(hostile_status, max_size=3),
    st.just("messages") | hostile_text,
    st.fixed_dictionaries({"phone_number_id": hostile_text, "display_phone_number": hostile_text}),
)
# Depths around each parser's limit: orjson writes 255 levels and reads 1024, `json` and
# Python stop near the recursion limit (1000).
DEPTHS = [254, 255, 256, 257, 500, 989, 990, 995, 998, 999, 1000, 1001, 1023, 1024, 1025, 1100]
NEST_AT = ["conversation", "pricing", "error_data", "unknown", "status", "body"]


def nested_body(depth: int, where: str, opener: bytes) -> bytes:
    closer = b"}" if opener.startswith(b"{") else b"]"
    deep = opener * depth + b"1" + closer * depth
    status = {"id": "wamid.N", "status": "failed", "timestamp": "1700000000",
              "errors": [{"code": 131026, "error_data": "@@"}]}  # fmt: skip
    if where in ("conversation", "pricing", "unknown"):
        status[where] = "@@"
        status["errors"][0].pop("error_data")
    if where == "body":
        return deep
    statuses = [status, {"id": "wamid.OK", "status": "failed", "timestamp": "1700000000",
                         "errors": [{"code": 131026}]}]  # fmt: skip
    if where == "status":
        statuses[0] = "@@"
    return json.dumps({"statuses": statuses}).encode().replace(b'"@@"', deep)


class TestHostileShapes:
    @FUZZ
    @given(document=st.fixed_dictionaries({"statuses": st.lists(hostile_status, max_size=3)})
           | hostile_cloud)  # fmt: skip
    def test_lone_surrogates_anywhere_are_never_a_500(self, redis, redis_url, document):
        """Lone surrogates in every string field: 200, and what is stored is valid UTF-8."""
        redis.flushdb()
        client = create_app(app_env(redis_url)).test_client()
        reply = post_signed(client, json.dumps(document).encode())
        assert reply.status_code == 200, reply.get_data(as_text=True)
        for raw in redis.lrange("wastatus:inbox", 0, -1):
            raw.decode("utf-8")
            assert b"\\ud" not in raw.lower()

    @pytest.mark.parametrize("opener", [b'{"a":', b"["])
    @pytest.mark.parametrize("where", NEST_AT)
    @pytest.mark.parametrize("depth", DEPTHS)
    def test_nesting_around_every_parser_limit_is_never_a_500(
        self, redis, redis_url, depth, where, opener
    ):
        """Deep nesting anywhere: 200 (stored or quarantined) and the event re-encodes."""
        redis.flushdb()
        client = create_app(app_env(redis_url)).test_client()
        reply = post_signed(client, nested_body(depth, where, opener))
        assert reply.status_code == 200, reply.get_data(as_text=True)
        assert reply.json["stored"] or reply.json.get("quarantined")
        for raw in redis.lrange("wastatus:inbox", 0, -1):
            json.dumps(json.loads(raw))
