"""Confluent's own serializers (confluent-kafka-python), for rivulet's
Schema Registry tests to cross-check the wire format against another
implementation: records this writes rivulet must read, and records rivulet
writes this must read.

  confluent_serde.py produce FORMAT BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE < records
      Writes one record per stdin line, {"key": "...", "value": {...}}, with
      a string key and the value serialized by Confluent's AvroSerializer or
      JSONSerializer (FORMAT avro or json), registering the schema under
      <TOPIC>-value.
  confluent_serde.py consume FORMAT BOOTSTRAP REGISTRY TOPIC COUNT
      Reads COUNT records from the start of partition 0 and prints each as
      {"key": "...", "value": {...}, "schema_id": N}, the value deserialized
      by Confluent's AvroDeserializer or JSONDeserializer with the writer's
      schema fetched by id.

The venv with confluent-kafka is made by registry.sh python.
"""

import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def serializer(fmt, client, schema):
    conf = {"auto.register.schemas": True}
    if fmt == "avro":
        return AvroSerializer(client, schema, conf=conf)
    if fmt == "json":
        return JSONSerializer(schema, client, conf=conf)
    raise SystemExit(f"unknown format {fmt}")


def deserializer(fmt, client):
    if fmt == "avro":
        return AvroDeserializer(client)
    if fmt == "json":
        # No schema given: each record's writer schema, fetched by its id.
        return JSONDeserializer(None, schema_registry_client=client)
    raise SystemExit(f"unknown format {fmt}")


def produce(fmt, bootstrap, registry, topic, schema_file):
    client = SchemaRegistryClient({"url": registry})
    with open(schema_file, encoding="utf-8") as f:
        schema = f.read()
    ser = serializer(fmt, client, schema)
    producer = Producer({"bootstrap.servers": bootstrap})
    ctx = SerializationContext(topic, MessageField.VALUE)
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        producer.produce(topic, key=record["key"].encode(), value=ser(record["value"], ctx), partition=0)
    if producer.flush(30) != 0:
        raise SystemExit("records were not delivered within 30 s")


def consume(fmt, bootstrap, registry, topic, count):
    client = SchemaRegistryClient({"url": registry})
    de = deserializer(fmt, client)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"confluent-serde-{topic}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    ctx = SerializationContext(topic, MessageField.VALUE)
    seen = 0
    misses = 0
    while seen < count:
        msg = consumer.poll(1.0)
        if msg is None:
            misses += 1
            if misses > 30:
                raise SystemExit(f"only {seen} of {count} records in {topic} within 30 s")
            continue
        if msg.error():
            raise SystemExit(str(msg.error()))
        raw = msg.value()
        value = de(raw, ctx)
        key = msg.key().decode() if msg.key() is not None else None
        print(json.dumps({"key": key, "value": value, "schema_id": int.from_bytes(raw[1:5], "big")}), flush=True)
        seen += 1
    consumer.close()


def main(argv):
    if len(argv) == 7 and argv[1] == "produce":
        produce(argv[2], argv[3], argv[4], argv[5], argv[6])
    elif len(argv) == 7 and argv[1] == "consume":
        consume(argv[2], argv[3], argv[4], argv[5], int(argv[6]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
