"""The loopback receiver that tests and benchmarks share (bench/_receiver.py) works as they need."""

from __future__ import annotations

import json
import socket
import statistics
import time

import pytest
import requests

from bench._receiver import Receiver, Reply, fault_reply


@pytest.fixture
def session():
    with requests.Session() as client:
        yield client


class TestReceiver:
    """Scripted answers in order, every request recorded, one prompt write per answer."""

    def test_scripted_replies_come_first_then_the_default(self, receiver, session):
        receiver.script(Reply(500), times=2)
        receiver.script(fault_reply("throttle", retry_after=7))
        answers = [session.post(receiver.url + "/a", data=b"{}") for _ in range(4)]
        assert [answer.status_code for answer in answers] == [500, 500, 429, 200]
        assert answers[2].headers["Retry-After"] == "7"
        assert [recorded.status for recorded in receiver.requests] == [500, 500, 429, 200]

    def test_a_request_is_recorded_before_its_answer_is_read(self, receiver, session):
        for index in range(20):
            session.post(receiver.url + "/r", data=json.dumps({"n": index}))
            assert receiver.requests[-1].json() == {"n": index}

    def test_kept_alive_answers_do_not_wait_for_a_delayed_ack(self, receiver, session):
        """Headers and body in two writes without TCP_NODELAY take ~40 ms a request here."""
        session.post(receiver.url, data=b"{}")
        times = []
        for _ in range(20):
            started = time.perf_counter()
            session.post(receiver.url, data=b'{"x": 1}')
            times.append(time.perf_counter() - started)
        assert statistics.median(times) < 0.02

    def test_a_request_whose_client_left_is_not_answered(self, receiver, session):
        receiver.script(Reply(delay=0.5))
        with pytest.raises(requests.Timeout):
            session.post(receiver.url, data=b"{}", timeout=0.1)
        deadline = time.monotonic() + 5
        while not receiver.abandoned and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.abandoned) == 1 and receiver.requests == []

    def test_accepted_holds_the_2xx_bodies_by_id(self, receiver, session):
        receiver.script(Reply(500))
        session.post(receiver.url, json={"event_id": "e1"})
        session.post(receiver.url, json={"event_id": "e1"})
        session.post(receiver.url, json={"id": "n1"})
        assert set(receiver.accepted()) == {"e1", "n1"}
        assert receiver.snapshot()["answers"] == {"500": 1, "200": 2}

    def test_stop_closes_kept_alive_connections(self):
        receiver = Receiver().start()
        connection = socket.create_connection(receiver._server.server_address[:2])
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        receiver.stop()
        connection.settimeout(5)
        assert connection.recv(4096) == b""  # closed: a stopped far end answers nothing
        connection.close()
