package rivulet.bench;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Test helper for the Kafka Streams bench app, not part of the benchmark:
 * creates topics, loads input of the benchmark's shape and checks what an app
 * made of it.
 *
 * <pre>
 * java -cp rivulet-kstreams-bench.jar rivulet.bench.Load create  &lt;bootstrap&gt; &lt;topic&gt; &lt;partitions&gt; [config=value ...]
 * java -cp rivulet-kstreams-bench.jar rivulet.bench.Load produce &lt;bootstrap&gt; &lt;topic&gt; &lt;records&gt;
 * java -cp rivulet-kstreams-bench.jar rivulet.bench.Load check   &lt;bootstrap&gt; &lt;W1|W2|W3&gt; &lt;input&gt; &lt;output&gt; &lt;application-id&gt; &lt;records&gt; [wait-seconds]
 * </pre>
 *
 * Input is the same as {@code benches/throughput.rs} makes: the same xorshift
 * sequence picks the user (100,000 keys), page, amount and partition (x % 4,
 * so a key always lands in the same partition); ts = 1700000000000 + i, and
 * the record timestamp is ts. {@code check} regenerates the input, so it must
 * be given the same record count.
 */
public final class Load {

    static final int PARTITIONS = 4;
    static final long KEYS = 100_000;
    static final long TS0 = 1_700_000_000_000L;
    static final long WINDOW_MS = 60_000;
    static final long GRACE_MS = 5_000;

    record Input(int partition, String user, String page, double amount, long ts) {
        byte[] value() {
            // Same fields and order as the Rust bench's serde_json output.
            String json = "{\"user\":\"" + user + "\",\"page\":\"" + page + "\",\"amount\":" + amount
                    + ",\"ts\":" + ts + "}";
            byte[] raw = json.getBytes(StandardCharsets.UTF_8);
            if (raw.length >= 100) {
                return raw;
            }
            byte[] padded = Arrays.copyOf(raw, 100);
            Arrays.fill(padded, raw.length, 100, (byte) ' ');
            return padded;
        }
    }

    static List<Input> input(int n) {
        List<Input> out = new ArrayList<>(n);
        long x = 0x9E37_79B9_7F4A_7C15L;
        for (int i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            String user = String.format("user-%06d", Long.remainderUnsigned(x, KEYS));
            String page = "/page/" + Long.remainderUnsigned(x, 97);
            double amount = Long.remainderUnsigned(x, 10_000) / 100.0 - 10.0;
            int partition = (int) Long.remainderUnsigned(x, PARTITIONS);
            out.add(new Input(partition, user, page, amount, TS0 + i));
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: Load create|produce|check ...");
            System.exit(2);
        }
        switch (args[0]) {
            case "create" -> create(args[1], args[2], Integer.parseInt(args[3]),
                    Arrays.asList(args).subList(4, args.length));
            case "produce" -> produce(args[1], args[2], Integer.parseInt(args[3]));
            case "check" -> System.exit(check(args[1], args[2], args[3], args[4], args[5], Integer.parseInt(args[6]),
                    args.length > 7 ? Integer.parseInt(args[7]) : 120) ? 0 : 1);
            default -> {
                System.err.println("unknown command " + args[0]);
                System.exit(2);
            }
        }
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(p);
    }

    static void create(String bootstrap, String topic, int partitions, List<String> configs) throws Exception {
        Map<String, String> topicConfig = new HashMap<>();
        for (String kv : configs) {
            topicConfig.put(kv.substring(0, kv.indexOf('=')), kv.substring(kv.indexOf('=') + 1));
        }
        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(topicConfig))).all().get();
        }
        System.out.println("created " + topic + " with " + partitions + " partitions");
    }

    static void produce(String bootstrap, String topic, int n) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        long start = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (Input in : input(n)) {
                producer.send(new ProducerRecord<>(topic, in.partition(), in.ts(),
                        in.user().getBytes(StandardCharsets.UTF_8), in.value()));
            }
            producer.flush();
        }
        System.out.printf("produced %d records to %s in %.1f s%n", n, topic, (System.nanoTime() - start) / 1e9);
    }

    static boolean check(String bootstrap, String workload, String inputTopic, String outputTopic, String appId,
            int n, int waitSeconds) throws Exception {
        List<Input> input = input(n);
        boolean ok = true;

        // 1. The group (= application id) has committed up to the end of the input.
        try (Admin admin = admin(bootstrap)) {
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                latest.put(new TopicPartition(inputTopic, p), OffsetSpec.latest());
            }
            Map<TopicPartition, Long> end = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
            for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e
                    : admin.listOffsets(latest).all().get().entrySet()) {
                end.put(e.getKey(), e.getValue().offset());
            }
            long deadline = System.nanoTime() + waitSeconds * 1_000_000_000L;
            Map<TopicPartition, Long> committed;
            int polls = 0;
            while (true) {
                Map<TopicPartition, OffsetAndMetadata> got =
                        admin.listConsumerGroupOffsets(appId).partitionsToOffsetAndMetadata().get();
                committed = new TreeMap<>((a, b) -> Integer.compare(a.partition(), b.partition()));
                for (TopicPartition tp : end.keySet()) {
                    OffsetAndMetadata om = got.get(tp);
                    committed.put(tp, om == null ? -1L : om.offset());
                }
                if (committed.equals(end) || System.nanoTime() > deadline) {
                    break;
                }
                if (++polls % 20 == 0) {
                    System.out.println("     ... committed " + committed.values());
                }
                Thread.sleep(500);
            }
            boolean caughtUp = committed.equals(end);
            System.out.println((caughtUp ? "OK  " : "BAD ") + "committed " + committed.values() + " end "
                    + end.values());
            ok &= caughtUp;
        }

        // 2. The output, read committed, until it has been quiet for 3 s.
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, "check-" + appId);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            consumer.subscribe(List.of(outputTopic));
            long quietSince = System.nanoTime();
            while (System.nanoTime() - quietSince < 3_000_000_000L) {
                var records = consumer.poll(Duration.ofMillis(200));
                if (!records.isEmpty()) {
                    quietSince = System.nanoTime();
                }
                records.forEach(out::add);
            }
        }
        System.out.println("     output records: " + out.size());

        switch (workload) {
            case "W1" -> {
                // Per key, in input order (a key is in one input and one output partition).
                Map<String, List<String>> want = new HashMap<>();
                for (Input in : input) {
                    if (in.amount() > -5.0) {
                        want.computeIfAbsent(in.user(), k -> new ArrayList<>())
                                .add("{\"user\":\"" + in.user() + "\",\"cents\":" + (long) (in.amount() * 100.0) + "}");
                    }
                }
                Map<String, List<String>> got = new HashMap<>();
                for (var r : out) {
                    got.computeIfAbsent(new String(r.key(), StandardCharsets.UTF_8), k -> new ArrayList<>())
                            .add(new String(r.value(), StandardCharsets.UTF_8));
                }
                long wantCount = want.values().stream().mapToLong(List::size).sum();
                boolean same = want.equals(got);
                System.out.println((same ? "OK  " : "BAD ") + "W1: " + out.size() + " records, want " + wantCount
                        + " (amount > -5.0), values equal per key in order: " + same);
                if (!out.isEmpty()) {
                    System.out.println("     sample: " + new String(out.get(0).key(), StandardCharsets.UTF_8) + " -> "
                            + new String(out.get(0).value(), StandardCharsets.UTF_8));
                }
                ok &= same;
            }
            case "W2" -> {
                Map<String, Long> want = input.stream()
                        .collect(Collectors.groupingBy(Input::user, Collectors.counting()));
                Map<String, Long> last = new HashMap<>();
                for (var r : out) {
                    last.put(new String(r.key(), StandardCharsets.UTF_8), bytesToLong(r.value()));
                }
                boolean same = want.equals(last);
                System.out.println((same ? "OK  " : "BAD ") + "W2: " + last.size() + " keys, want " + want.size()
                        + "; last count per key equals input count per key: " + same + " (" + out.size()
                        + " updates for " + input.size() + " inputs, caching on)");
                ok &= same;
            }
            case "W3" -> {
                // Stream time per partition = the largest ts in it; a window is
                // closed once stream time >= window end + grace.
                long[] streamTime = new long[PARTITIONS];
                Arrays.fill(streamTime, Long.MIN_VALUE);
                Map<String, Long> all = new HashMap<>();
                Map<String, Integer> partitionOf = new HashMap<>();
                for (Input in : input) {
                    streamTime[in.partition()] = Math.max(streamTime[in.partition()], in.ts());
                    long start = in.ts() - Math.floorMod(in.ts(), WINDOW_MS);
                    all.merge(in.user() + "@" + start, 1L, Long::sum);
                    partitionOf.put(in.user(), in.partition());
                }
                Map<String, Long> closed = new HashMap<>();
                Map<String, Long> open = new HashMap<>();
                all.forEach((k, v) -> {
                    int at = k.indexOf('@');
                    long start = Long.parseLong(k.substring(at + 1));
                    boolean isClosed = streamTime[partitionOf.get(k.substring(0, at))] >= start + WINDOW_MS + GRACE_MS;
                    (isClosed ? closed : open).put(k, v);
                });
                Map<String, Long> got = new HashMap<>();
                int duplicates = 0;
                for (var r : out) {
                    if (got.put(new String(r.key(), StandardCharsets.UTF_8), bytesToLong(r.value())) != null) {
                        duplicates++;
                    }
                }
                Map<Long, Long> gotPerWindow = new TreeMap<>();
                got.keySet().forEach(k -> gotPerWindow.merge(Long.parseLong(k.substring(k.indexOf('@') + 1)), 1L,
                        Long::sum));
                Map<Long, Long> closedPerWindow = new TreeMap<>();
                closed.keySet().forEach(k -> closedPerWindow.merge(Long.parseLong(k.substring(k.indexOf('@') + 1)),
                        1L, Long::sum));
                long wrong = got.entrySet().stream().filter(e -> !e.getValue().equals(closed.get(e.getKey()))).count();
                long emittedOpen = got.keySet().stream().filter(open::containsKey).count();
                boolean exact = got.equals(closed);
                System.out.println((wrong == 0 && duplicates == 0 ? "OK  " : "BAD ") + "W3: " + got.size()
                        + " (key, window) counts emitted, " + duplicates + " emitted twice, " + wrong
                        + " not equal to the input count of a closed window (" + emittedOpen + " of an open one)");
                System.out.println("     windows emitted (start -> keys): " + gotPerWindow);
                Map<Integer, Long> emittedPerPartition = new TreeMap<>();
                got.keySet().forEach(k -> emittedPerPartition.merge(partitionOf.get(k.substring(0, k.indexOf('@'))), 1L,
                        Long::sum));
                Map<Integer, Long> closedPerPartition = new TreeMap<>();
                closed.keySet().forEach(k -> closedPerPartition.merge(partitionOf.get(k.substring(0, k.indexOf('@'))), 1L,
                        Long::sum));
                System.out.println("     per input partition: emitted " + emittedPerPartition + ", closed "
                        + closedPerPartition);
                System.out.println("     windows closed by the input (start -> keys): " + closedPerWindow
                        + "; still open: " + open.size() + "; emitted == closed: " + exact);
                if (!out.isEmpty()) {
                    System.out.println("     sample: " + new String(out.get(0).key(), StandardCharsets.UTF_8) + " -> "
                            + bytesToLong(out.get(0).value()));
                }
                ok &= wrong == 0 && duplicates == 0;
            }
            default -> throw new IllegalArgumentException(workload);
        }
        return ok;
    }

    static long bytesToLong(byte[] b) {
        long v = 0;
        for (byte x : b) {
            v = (v << 8) | (x & 0xff);
        }
        return v;
    }

    private Load() {}
}
