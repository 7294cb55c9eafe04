#!/usr/bin/env python3
"""A msgsdk client in Python, through msgsdk-sidecar's published gRPC API.

Nothing of msgsdk's C++ is used: the stubs come from sidecar/proto/msgsdk/v1/messaging.proto
(generated with protoc and grpc_python_plugin; see run.sh), and the process talks to a running
msgsdk-sidecar. It publishes a batch of order events to a topic, subscribes to the topic in a
consumer group with a credit window, acknowledges every delivery, and checks that each
published message arrived with its key, tag, properties and body.

Usage: sidecar_client.py SIDECAR_ADDRESS [--topic T] [--group G] [--count N]
  SIDECAR_ADDRESS  "host:port" or "unix:/path/to/socket"
Exit status 0 when every message was received intact, 1 otherwise.
"""

import argparse
import sys
import threading
import queue

import grpc

from msgsdk.v1 import messaging_pb2 as pb
from msgsdk.v1 import messaging_pb2_grpc as rpc


def publish(stub, topic, count):
    request = pb.PublishRequest(topic=topic)
    for i in range(count):
        message = request.messages.add()
        message.key = f"order-{i % 10}"
        message.tag = "created" if i % 2 == 0 else "paid"
        message.properties["n"] = str(i)
        message.body = f"event {i} from python".encode()
    response = stub.Publish(request, timeout=30)
    ids = {}
    for i, result in enumerate(response.results):
        if result.status.code != 0:
            raise RuntimeError(f"message {i} refused: {result.status.message}")
        ids[result.message_id] = i
    return ids


def subscribe(stub, topic, group, expected):
    """Receives until every expected message id arrived; returns {message_id: Message}."""
    outgoing = queue.Queue()
    start = pb.SubscribeRequest(credit=100)
    start.start.topic = topic
    start.start.group = group
    outgoing.put(start)

    def requests():
        while True:
            request = outgoing.get()
            if request is None:
                return
            yield request

    received = {}
    responses = stub.Subscribe(requests(), timeout=60)
    try:
        for response in responses:
            if response.HasField("started"):
                print(f"subscribed: topic {topic!r}, group {group!r}, "
                      f"cluster {response.started.cluster!r}")
            if not response.deliveries:
                continue
            settle = pb.SubscribeRequest()
            for delivery in response.deliveries:
                received[delivery.message.message_id] = delivery.message
                settle.settles.add(delivery_id=delivery.delivery_id,
                                   outcome=pb.Settle.ACK)
            outgoing.put(settle)
            if expected.issubset(received.keys()):
                break
    finally:
        outgoing.put(None)  # half-close: the sidecar ends the stream and commits
        for _ in responses:
            pass
    return received


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("--topic", default="python-orders")
    parser.add_argument("--group", default="python-billing")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()

    with grpc.insecure_channel(args.address) as channel:
        stub = rpc.MessagingStub(channel)
        route = stub.GetRoute(pb.GetRouteRequest(topic=args.topic), timeout=30,
                              wait_for_ready=True)
        print(f"route: {route.topic!r} -> cluster {route.cluster!r} "
              f"(backend {route.capabilities.backend}, environment {route.environment!r})")
        ids = publish(stub, args.topic, args.count)
        print(f"published {len(ids)} messages")
        received = subscribe(stub, args.topic, args.group, set(ids))

    missing = set(ids) - received.keys()
    damaged = []
    for message_id, i in ids.items():
        message = received.get(message_id)
        if message is None:
            continue
        if (message.body != f"event {i} from python".encode()
                or message.key != f"order-{i % 10}"
                or message.tag != ("created" if i % 2 == 0 else "paid")
                or message.properties.get("n") != str(i)):
            damaged.append(message_id)
    print(f"received {len(received)} messages: {len(missing)} missing, {len(damaged)} damaged")
    return 0 if not missing and not damaged else 1


if __name__ == "__main__":
    sys.exit(main())
