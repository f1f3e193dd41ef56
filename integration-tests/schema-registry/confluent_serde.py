"""Confluent's own serializers (confluent-kafka-python), for rivulet's
Schema Registry tests to cross-check the wire format against another
implementation: records this writes rivulet must read, and records rivulet
writes this must read.

  confluent_serde.py produce FORMAT BOOTSTRAP REGISTRY TOPIC SCHEMA_FILE < records
      Writes one record per stdin line, {"key": "...", "value": {...}}, with
      a string key and the value serialized by Confluent's AvroSerializer,
      JSONSerializer or ProtobufSerializer (FORMAT avro, json or protobuf),
      registering the schema under <TOPIC>-value. For protobuf, SCHEMA_FILE
      is a .proto file and the value is its first message, as JSON.
  confluent_serde.py consume FORMAT BOOTSTRAP REGISTRY TOPIC COUNT [SCHEMA_FILE]
      Reads COUNT records from the start of partition 0 and prints each as
      {"key": "...", "value": {...}, "schema_id": N}, the value deserialized
      by Confluent's AvroDeserializer or JSONDeserializer with the writer's
      schema fetched by id, or by its ProtobufDeserializer as the first
      message of the .proto SCHEMA_FILE.

The venv with confluent-kafka is made by registry.sh python.
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from google.protobuf import json_format
from confluent_kafka.serialization import MessageField, SerializationContext


def first_message_class(proto_file):
    """The Python class of the first message of a .proto file, made with protoc."""
    out = tempfile.mkdtemp()
    directory, name = os.path.split(os.path.abspath(proto_file))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{directory}", f"--python_out={out}", name],
                   check=True)
    sys.path.insert(0, out)
    module = importlib.import_module(name[:-len(".proto")] + "_pb2")
    first = next(iter(module.DESCRIPTOR.message_types_by_name))
    return getattr(module, first)


def serializer(fmt, client, schema_file):
    conf = {"auto.register.schemas": True}
    if fmt == "protobuf":
        cls = first_message_class(schema_file)
        ser = ProtobufSerializer(cls, client, {**conf, "use.deprecated.format": False})
        return lambda value, ctx: ser(json_format.ParseDict(value, cls()), ctx)
    with open(schema_file, encoding="utf-8") as f:
        schema = f.read()
    if fmt == "avro":
        return AvroSerializer(client, schema, conf=conf)
    if fmt == "json":
        return JSONSerializer(schema, client, conf=conf)
    raise SystemExit(f"unknown format {fmt}")


def deserializer(fmt, client, schema_file):
    if fmt == "avro":
        return AvroDeserializer(client)
    if fmt == "json":
        # No schema given: each record's writer schema, fetched by its id.
        return JSONDeserializer(None, schema_registry_client=client)
    if fmt == "protobuf":
        de = ProtobufDeserializer(first_message_class(schema_file), {"use.deprecated.format": False})
        return lambda raw, ctx: json_format.MessageToDict(de(raw, ctx), preserving_proto_field_name=True)
    raise SystemExit(f"unknown format {fmt}")


def produce(fmt, bootstrap, registry, topic, schema_file):
    client = SchemaRegistryClient({"url": registry})
    ser = serializer(fmt, client, schema_file)
    producer = Producer({"bootstrap.servers": bootstrap})
    ctx = SerializationContext(topic, MessageField.VALUE)
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        producer.produce(topic, key=record["key"].encode(), value=ser(record["value"], ctx), partition=0)
    if producer.flush(30) != 0:
        raise SystemExit("records were not delivered within 30 s")


def consume(fmt, bootstrap, registry, topic, count, schema_file=None):
    client = SchemaRegistryClient({"url": registry})
    de = deserializer(fmt, client, schema_file)
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
    elif len(argv) in (7, 8) and argv[1] == "consume":
        consume(argv[2], argv[3], argv[4], argv[5], int(argv[6]), *argv[7:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
