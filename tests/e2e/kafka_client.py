"""An independent Kafka client for the Kafka tests (confluent-kafka, the Python binding of
librdkafka; Weir links librdkafka too, but none of Weir's code runs here).

    kafka_client.py SERVERS create TOPIC PARTITIONS      create a topic
    kafka_client.py SERVERS produce FILE [single]        produce each line of FILE,
                                                         `topic<TAB>partition<TAB>value`;
                                                         `single`: one message per batch
    kafka_client.py SERVERS read TOPIC ISOLATION         print every value (read_committed
                                                         or read_uncommitted), one per line
"""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(servers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": servers})
    futures = admin.create_topics([NewTopic(topic, num_partitions=int(partitions), replication_factor=1)])
    for future in futures.values():
        future.result(timeout=30)
    # Wait until the metadata shows every partition.
    deadline = time.time() + 30
    while time.time() < deadline:
        meta = admin.list_topics(topic, timeout=10)
        t = meta.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == int(partitions):
            return
        time.sleep(0.1)
    raise SystemExit(f"topic {topic} has not all its partitions after 30 s")


def produce(servers, path, single=None):
    config = {"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 5}
    if single == "single":
        # tansu 0.4.9 cannot fetch from an offset inside a batch: one message per batch, so
        # that a restart can read on from any offset.
        config.update({"linger.ms": 0, "batch.num.messages": 1})
    producer = Producer(config)
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if not line:
                continue
            topic, partition, value = line.split(b"\t", 2)
            while True:
                try:
                    producer.produce(topic.decode(), value=value, partition=int(partition), on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
    left = producer.flush(60)
    if left or failed:
        raise SystemExit(f"{left} messages not delivered, {len(failed)} failed: {failed[:3]}")


def read(servers, topic, isolation):
    consumer = Consumer({
        "bootstrap.servers": servers,
        "group.id": "kafka-client-read",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
    })
    meta = consumer.list_topics(topic, timeout=10)
    partitions = list(meta.topics[topic].partitions)
    ends = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = high
    todo = {p for p in partitions if ends[p] > 0}
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = sys.stdout.buffer
    deadline = time.time() + 60
    while todo and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == msg.error()._PARTITION_EOF:
                todo.discard(msg.partition())
                continue
            raise SystemExit(f"reading {topic}: {msg.error()}")
        out.write(msg.value() + b"\n")
        if msg.offset() + 1 >= ends[msg.partition()]:
            todo.discard(msg.partition())
    consumer.close()
    if todo:
        raise SystemExit(f"reading {topic}: partitions {sorted(todo)} not read to their end in 60 s")


def main():
    servers, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    {"create": create, "produce": produce, "read": read}[command](servers, *args)


if __name__ == "__main__":
    main()
