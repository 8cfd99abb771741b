"""servicekit.timestamps gives what protobuf's own conversions give, both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from servicekit.timestamps import from_timestamp, now_timestamp, to_optional_timestamp, to_timestamp


def _protobuf_stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 12, 7, 1, 2, 3, 456789),  # naive: read as UTC
        datetime(2026, 12, 7, 3, 2, 3, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_a_datetime_becomes_the_timestamp_protobuf_would_build(value):
    assert to_timestamp(value) == _protobuf_stamp(value)


@pytest.mark.parametrize(
    "value", [datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC), datetime(1960, 5, 1, tzinfo=UTC)]
)
def test_a_timestamp_comes_back_as_the_same_aware_utc_datetime(value):
    back = from_timestamp(to_timestamp(value))

    assert back == value
    assert back.tzinfo is UTC
    assert back == _protobuf_stamp(value).ToDatetime(tzinfo=UTC)


def test_nanoseconds_below_a_microsecond_are_dropped():
    assert from_timestamp(timestamp_pb2.Timestamp(seconds=0, nanos=1_999)) == datetime(
        1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC
    )


def test_no_datetime_is_no_timestamp():
    assert to_optional_timestamp(None) is None
    assert to_optional_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == to_timestamp(
        datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_now_is_between_the_clock_before_and_after():
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = now_timestamp()
    after = datetime.now(UTC) + timedelta(microseconds=1)

    assert before <= from_timestamp(stamp) <= after
