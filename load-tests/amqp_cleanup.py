"""Deletes one benchmark run's RabbitMQ queues and exchanges (see docs/events.md).

    load-tests/.venv/bin/python load-tests/amqp_cleanup.py <namespace>

Uses pika (installed by run.sh into load-tests/.venv). OFFNDAT_AMQP_URL or
LT_AMQP_URL picks the broker (default amqp://guest:guest@127.0.0.1:5672/%2f).
"""

import os
import sys

import pika


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].startswith("bench-"):
        print("usage: amqp_cleanup.py bench-<namespace>", file=sys.stderr)
        return 2
    ns = sys.argv[1]
    url = os.environ.get("LT_AMQP_URL") or os.environ.get("OFFNDAT_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/%2f"
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 10
    connection = pika.BlockingConnection(params)
    deleted = []
    try:
        for queue in (f"{ns}.link-visited", f"{ns}.link-created", f"{ns}.dead-letter"):
            channel = connection.channel()
            try:
                channel.queue_delete(queue=queue)
                deleted.append(queue)
            except pika.exceptions.ChannelClosedByBroker:
                pass  # not there
        for exchange in (f"{ns}.events", f"{ns}.dead-letter"):
            channel = connection.channel()
            try:
                channel.exchange_delete(exchange=exchange)
                deleted.append(exchange)
            except pika.exceptions.ChannelClosedByBroker:
                pass
    finally:
        connection.close()
    print(f"deleted {len(deleted)} queues/exchanges of {ns}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
