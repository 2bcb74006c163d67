"""web's wake-up reaches every live process: one PUSH socket per endpoint, each live
process's PULL socket gets every commit (real ZeroMQ over ipc://, no timing)."""

from __future__ import annotations

import zmq

from live_events.wakeup import WakeupPublisher


def test_every_live_endpoint_gets_every_commit(tmp_path):
    context = zmq.Context()
    endpoints = tuple(f"ipc://{tmp_path / f'live-notify-{i}.sock'}" for i in range(2))
    pulls = []
    for endpoint in endpoints:
        pull = context.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.RCVTIMEO, 10_000)
        pull.bind(endpoint)
        pulls.append(pull)
    publisher = WakeupPublisher(endpoints, context)
    try:
        for event_id in (7, 8, 9):
            publisher.committed(event_id)
        # One PUSH socket connected to both would deal these out, 7 to one, 8 to the other.
        assert [[pull.recv() for _ in range(3)] for pull in pulls] == [[b"7", b"8", b"9"]] * 2
    finally:
        publisher.close()
        for pull in pulls:
            pull.close(0)
        context.term()
