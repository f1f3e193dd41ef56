package rivulet.bench;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.ObjectWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Kafka Streams side of rivulet's throughput benchmark (issue 7): the same
 * workloads W1, W2, W3 and W4 (issue 14's stream-table join, whose input
 * argument is {@code <stream topic>,<table topic>}) as {@code benches/throughput.rs}, written the way a
 * Kafka Streams user would write them, with Kafka Streams' defaults wherever
 * the benchmark does not say otherwise.
 *
 * <pre>
 * java -jar rivulet-kstreams-bench.jar &lt;workload&gt; &lt;guarantee&gt; &lt;bootstrap&gt;
 *     &lt;input-topic&gt; &lt;output-topic&gt; &lt;application-id&gt; &lt;state-dir&gt; &lt;commit-interval-ms&gt;
 * </pre>
 *
 * Prints {@code RUNNING} on stdout when the client first reaches RUNNING.
 * SIGTERM closes the client (30 s at most) and exits 0; a stream thread that
 * dies on an exception makes the process exit 1.
 */
public final class KStreamsBench {

    static final String USAGE = "usage: java -jar rivulet-kstreams-bench.jar"
            + " <W1|W2|W3|W4> <at_least_once|exactly_once> <bootstrap> <input-topic> <output-topic>"
            + " <application-id> <state-dir> <commit-interval-ms>"
            + "  (env KSTREAMS_THREADS overrides num.stream.threads, default 1)";

    /** Input value of every workload: ~100 bytes of JSON padded with spaces. */
    public static final class View {
        public String user;
        public String page;
        public double amount;
        public long ts;
    }

    /** W1's output value. */
    public record Out(String user, long cents) {}

    /** W4's table value: a user's profile. */
    public record Profile(String name, String tier, String country) {}

    /** W4's output value: the input fields and the user's profile, or null. */
    public record Enriched(String user, String page, double amount, long ts, Profile profile) {}

    // Unknown fields are ignored, as serde does by default on the Rust side.
    static final ObjectMapper JSON =
            new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);
    static final ObjectReader VIEW_READER = JSON.readerFor(View.class);
    static final ObjectWriter OUT_WRITER = JSON.writerFor(Out.class);
    static final ObjectReader PROFILE_READER = JSON.readerFor(Profile.class);
    static final ObjectWriter ENRICHED_WRITER = JSON.writerFor(Enriched.class);

    /** W1 values that were not valid JSON of the input shape (skipped). */
    static final AtomicLong UNPARSABLE = new AtomicLong();

    private KStreamsBench() {}

    static Serde<Out> outSerde() {
        return jsonSerde(OUT_WRITER, JSON.readerFor(Out.class));
    }

    /** A Jackson serde; null (a table's tombstone) stays null both ways. */
    static <T> Serde<T> jsonSerde(ObjectWriter writer, ObjectReader reader) {
        return Serdes.serdeFrom(
                (topic, value) -> {
                    if (value == null) {
                        return null;
                    }
                    try {
                        return writer.writeValueAsBytes(value);
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                },
                (topic, bytes) -> {
                    if (bytes == null) {
                        return null;
                    }
                    try {
                        return reader.readValue(bytes);
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                });
    }

    /** Parses an input value, or skips (and counts) one that is not JSON of the input shape. */
    static List<View> parseView(byte[] bytes) {
        try {
            return List.of(VIEW_READER.<View>readValue(bytes));
        } catch (IOException | RuntimeException e) {
            UNPARSABLE.incrementAndGet();
            return List.of();
        }
    }

    static Topology topology(String workload, String input, String output, Properties config) {
        // The builder gets the config too (as Kafka Streams recommends), so
        // that it does not build a default StreamsConfig of its own.
        StreamsBuilder builder = new StreamsBuilder(new TopologyConfig(new StreamsConfig(config)));
        switch (workload) {
            case "W1" -> builder.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
                    .flatMapValues(KStreamsBench::parseView)
                    .filter((user, v) -> v.amount > -5.0)
                    .mapValues(v -> new Out(v.user, (long) (v.amount * 100.0)))
                    .to(output, Produced.with(Serdes.String(), outSerde()));
            case "W2" -> builder.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
                    .groupByKey()
                    .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("per-user"))
                    .toStream()
                    .to(output, Produced.with(Serdes.String(), Serdes.Long()));
            case "W3" -> builder.stream(input, Consumed.with(Serdes.String(), Serdes.ByteArray()))
                    .groupByKey()
                    // Event time: the record timestamp (CreateTime = the value's ts),
                    // Kafka Streams' default timestamp extractor.
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofSeconds(5)))
                    .emitStrategy(EmitStrategy.onWindowClose())
                    .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("per-user-minute"))
                    .toStream((windowed, count) -> windowed.key() + "@" + windowed.window().start())
                    .to(output, Produced.with(Serdes.String(), Serdes.Long()));
            case "W4" -> {
                // The input argument is "<stream topic>,<table topic>".
                String[] topics = input.split(",", 2);
                KTable<String, Profile> profiles = builder.table(topics[1],
                        Consumed.with(Serdes.String(), jsonSerde(JSON.writerFor(Profile.class), PROFILE_READER)),
                        Materialized.<String, Profile, KeyValueStore<Bytes, byte[]>>as("profiles"));
                builder.stream(topics[0], Consumed.with(Serdes.String(), Serdes.ByteArray()))
                        .flatMapValues(KStreamsBench::parseView)
                        .leftJoin(profiles, (v, p) -> new Enriched(v.user, v.page, v.amount, v.ts, p))
                        .to(output, Produced.with(Serdes.String(),
                                jsonSerde(ENRICHED_WRITER, JSON.readerFor(Enriched.class))));
            }
            default -> throw new IllegalArgumentException("unknown workload " + workload);
        }
        return builder.build();
    }

    static Properties config(String guarantee, String bootstrap, String applicationId, String stateDir,
            long commitIntervalMs, int threads) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                guarantee.equals("exactly_once") ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitIntervalMs);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        // One stream thread: the input has 4 partitions (4 tasks) and the
        // machine 2 cores; the Rust app runs with its defaults too. KSTREAMS_THREADS
        // overrides it.
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        // No global stores here, so this changes nothing but silences a WARN
        // Kafka Streams 4.3 logs at startup (it becomes the default in 5.0).
        p.put(StreamsConfig.PROCESSING_EXCEPTION_HANDLER_GLOBAL_ENABLED_CONFIG, true);
        // Left at Kafka Streams' defaults on purpose: RocksDB stores, record
        // caching on (statestore.cache.max.bytes = 10 MiB), the classic group
        // protocol; consumer isolation.level is set by Kafka Streams under EOS.
        return p;
    }

    static int usage(String why) {
        return usage(why, USAGE);
    }

    static int usage(String why, String usage) {
        System.err.println("kstreams-bench: " + why);
        System.err.println(usage);
        return 2;
    }

    /** A non-negative integer argument, or -1 if it is not one. */
    static long nonNegative(String arg) {
        try {
            long ms = Long.parseLong(arg);
            return ms < 0 ? -1 : ms;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** num.stream.threads: 1, or env KSTREAMS_THREADS; 0 if that is not a positive integer. */
    static int threadsFromEnv() {
        String threadsEnv = System.getenv("KSTREAMS_THREADS");
        if (threadsEnv == null || threadsEnv.isBlank()) {
            return 1;
        }
        try {
            int threads = Integer.parseInt(threadsEnv.trim());
            return Math.max(threads, 0);
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 8) {
            System.exit(usage("expected 8 arguments, got " + args.length));
        }
        String workload = args[0];
        String guarantee = args[1];
        if (!List.of("W1", "W2", "W3", "W4").contains(workload)) {
            System.exit(usage("unknown workload '" + workload + "'"));
        }
        if (!List.of("at_least_once", "exactly_once").contains(guarantee)) {
            System.exit(usage("unknown guarantee '" + guarantee + "'"));
        }
        long commitIntervalMs = nonNegative(args[7]);
        if (commitIntervalMs < 0) {
            System.exit(usage("commit-interval-ms must be a non-negative integer, got '" + args[7] + "'"));
        }
        int threads = threadsFromEnv();
        if (threads < 1) {
            System.exit(usage("KSTREAMS_THREADS must be a positive integer, got '"
                    + System.getenv("KSTREAMS_THREADS") + "'"));
        }

        Properties config = config(guarantee, args[2], args[5], args[6], commitIntervalMs, threads);
        run(topology(workload, args[3], args[4], config), config);
    }

    /**
     * Runs the topology until SIGTERM (exit 0) or a dying stream thread
     * (exit 1); prints {@code RUNNING} when the client first reaches RUNNING.
     */
    static void run(Topology topology, Properties config) throws InterruptedException {
        KafkaStreams streams = new KafkaStreams(topology, config);

        AtomicBoolean announced = new AtomicBoolean();
        AtomicBoolean failed = new AtomicBoolean();
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && announced.compareAndSet(false, true)) {
                System.out.println("RUNNING");
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR) {
                failed.set(true);
                stopped.countDown();
            } else if (now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        // One instance only: stop this client (the state goes to ERROR) and
        // let main exit 1 so the driver notices.
        streams.setUncaughtExceptionHandler(e -> {
            failed.set(true);
            System.err.println("kstreams-bench: stream thread died: " + e);
            e.printStackTrace();
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        // SIGTERM (or System.exit below): close cleanly, then end with our own
        // status. halt() because the JVM would otherwise exit 143 on SIGTERM.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            boolean closed = streams.close(Duration.ofSeconds(30));
            if (!closed) {
                System.err.println("kstreams-bench: close did not finish within 30 s");
            }
            long unparsable = UNPARSABLE.get();
            if (unparsable > 0) {
                System.err.println("kstreams-bench: skipped " + unparsable + " unparsable values");
            }
            System.out.flush();
            System.err.flush();
            Runtime.getRuntime().halt(failed.get() || !closed ? 1 : 0);
        }, "kstreams-bench-shutdown"));

        streams.start();
        stopped.await();
        // Reached when the client stopped by itself (ERROR) or while the
        // shutdown hook is closing it; in the latter case exit() waits for the
        // hook, which halts with its own status.
        System.exit(failed.get() ? 1 : 0);
    }
}
