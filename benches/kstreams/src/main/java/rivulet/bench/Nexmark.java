package rivulet.bench;

import com.fasterxml.jackson.databind.ObjectReader;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.function.Function;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.TableJoined;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.StreamPartitioner;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Kafka Streams side of rivulet's Nexmark benchmark (issue 15): queries q0,
 * q1, q2, q3, q4, q5, q7 and q8 over the preloaded topics
 * {@code <prefix>-person}, {@code <prefix>-auction} and {@code <prefix>-bid}
 * described in the shared spec, written the way a Kafka Streams user would.
 *
 * <pre>
 * java -cp rivulet-kstreams-bench.jar rivulet.bench.Nexmark &lt;query&gt; &lt;guarantee&gt; &lt;bootstrap&gt;
 *     &lt;input-prefix&gt; &lt;output-topic&gt; &lt;application-id&gt; &lt;state-dir&gt; &lt;commit-interval-ms&gt;
 *     [q4-window-ms]
 * </pre>
 *
 * Runs like {@link KStreamsBench} (same settings, RUNNING line, SIGTERM and
 * exit codes). Input keys are decimal ids and the input partition is
 * id % partitions (not murmur2), so every topic this app partitions by an id
 * itself (q3's foreign-key join, q8's auctions by seller) uses the same rule,
 * {@link #BY_NUMBER}, to stay co-partitioned with the input.
 */
public final class Nexmark {

    /**
     * The Nexmark generator's longest auction at its defaults: an auction
     * lasts 1 + nextLong(2 * horizon) ms, horizon = the time the generator
     * takes for numInFlightAuctions (100) auctions' worth of events,
     * 100 * 50 / 3 = 1666 events at 100 us each (10,000 events/s, one
     * generator), i.e. at most 167 ms; so at most 334 ms.
     */
    static final long DEFAULT_Q4_WINDOW_MS = 334;

    /**
     * Retention of q5's and q7's window stores. Kafka Streams' default is
     * size + grace (10 s here), and emit-on-close reads the closed windows
     * with a store fetch that the store clamps to [stream time - retention,
     * ...]: with the default, a check (at most once a second of wall-clock
     * time per task) finds only the windows that closed at exactly that
     * stream time, or are still in the record cache, and the other closed
     * windows are never emitted (seen in testing). A task that goes through
     * a preloaded backlog advances seconds of event time between two
     * checks; ten minutes covers that with a wide margin.
     */
    static final Duration WINDOW_RETENTION = Duration.ofMinutes(10);

    static final String USAGE = "usage: java -cp rivulet-kstreams-bench.jar rivulet.bench.Nexmark"
            + " <q0|q1|q2|q3|q4|q5|q7|q8> <at_least_once|exactly_once> <bootstrap> <input-prefix>"
            + " <output-topic> <application-id> <state-dir> <commit-interval-ms> [q4-window-ms]"
            + "  (q4-window-ms: q4's join time difference = the generator's longest auction, default "
            + DEFAULT_Q4_WINDOW_MS + " = 2 * ceil(1666 events * inter-event delay) for the default"
            + " 10,000 events/s and 100 in-flight auctions; env KSTREAMS_THREADS overrides"
            + " num.stream.threads, default 1)";

    static final List<String> QUERIES = List.of("q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8");

    // Input events, field names and order as Nexmark's Flink JSON.
    public record Person(long id, String name, String emailAddress, String creditCard, String city, String state,
            long dateTime, String extra) {}

    public record Auction(long id, String itemName, String description, long initialBid, long reserve,
            long dateTime, long expires, long seller, long category, String extra) {}

    public record Bid(long auction, long bidder, long price, String channel, String url, long dateTime,
            String extra) {}

    // Output values (and the intermediate values that go through stores or
    // repartition topics), JSON field names as the spec says.
    public record Q1(long auction, long bidder, long price, long dateTime) {}

    public record Q2(long auction, long price) {}

    public record Q3(String name, String city, String state, long id) {}

    /** q4: a joined pair (not stored: filtered and mapped right away). */
    public record BidAuction(Bid bid, Auction auction) {}

    /** q4: an auction's category and a bid's price (max per auction in the table). */
    public record CategoryPrice(long category, long price) {}

    /** q4: sum and count of the per-auction max prices of a category. */
    public record SumCount(long sum, long count) {}

    public record Q4(long category, double avg) {}

    /** q5 and q7 output; q7's per-auction max is the same shape without the window. */
    public record Q5(long window_start, long auction, long count) {}

    public record PriceBid(long auction, long bidder, long price) {}

    public record Q7(long window_start, long auction, long bidder, long price) {}

    /** q8: the person side of the join, projected to what the output needs. */
    public record PersonName(long id, String name) {}

    public record Q8(long id, String name, long auction) {}

    static final ObjectReader PERSON_READER = KStreamsBench.JSON.readerFor(Person.class);
    static final ObjectReader AUCTION_READER = KStreamsBench.JSON.readerFor(Auction.class);
    static final ObjectReader BID_READER = KStreamsBench.JSON.readerFor(Bid.class);

    /**
     * Partition = the decimal key % partitions, as the input topics are
     * loaded; a key that is not a number falls back to the default
     * partitioner.
     */
    static <V> StreamPartitioner<String, V> byNumber() {
        return (topic, key, value, partitions) -> {
            try {
                return Optional.of(Set.of((int) Math.floorMod(Long.parseLong(key), (long) partitions)));
            } catch (NumberFormatException e) {
                return Optional.empty();
            }
        };
    }

    private Nexmark() {}

    static <T> Serde<T> json(Class<T> type) {
        return KStreamsBench.jsonSerde(KStreamsBench.JSON.writerFor(type), KStreamsBench.JSON.readerFor(type));
    }

    /** Parses an input value, or skips (and counts) one that is not JSON of the event's shape. */
    static <T> List<T> parse(ObjectReader reader, byte[] bytes) {
        try {
            return List.of(reader.<T>readValue(bytes));
        } catch (IOException | RuntimeException e) {
            KStreamsBench.UNPARSABLE.incrementAndGet();
            return List.of();
        }
    }

    /**
     * A table's value serde: an unparsable value reads as null, i.e. is
     * taken as a delete of its key (and counted).
     */
    static <T> Serde<T> lenientJson(Class<T> type) {
        ObjectReader reader = KStreamsBench.JSON.readerFor(type);
        return Serdes.serdeFrom(json(type).serializer(), (topic, bytes) -> {
            if (bytes == null) {
                return null;
            }
            List<T> parsed = parse(reader, bytes);
            return parsed.isEmpty() ? null : parsed.get(0);
        });
    }

    static <T> KStream<String, T> events(StreamsBuilder builder, String topic, ObjectReader reader) {
        return builder.stream(topic, Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .flatMapValues(bytes -> Nexmark.<T>parse(reader, bytes));
    }

    static <K, V> Materialized<K, V, KeyValueStore<Bytes, byte[]>> kvStore(String name, Serde<K> keys,
            Serde<V> values) {
        return Materialized.<K, V, KeyValueStore<Bytes, byte[]>>as(name).withKeySerde(keys).withValueSerde(values);
    }

    /** q5's order: the higher count, then the lower auction id. */
    static Q5 hotter(Q5 a, Q5 b) {
        if (a.count() != b.count()) {
            return a.count() > b.count() ? a : b;
        }
        return a.auction() <= b.auction() ? a : b;
    }

    /** q7's order: the higher price, then the lower auction id, then the lower bidder. */
    static <T> T higher(T a, T b, Function<T, PriceBid> bid) {
        PriceBid x = bid.apply(a);
        PriceBid y = bid.apply(b);
        if (x.price() != y.price()) {
            return x.price() > y.price() ? a : b;
        }
        if (x.auction() != y.auction()) {
            return x.auction() < y.auction() ? a : b;
        }
        return x.bidder() <= y.bidder() ? a : b;
    }

    static Topology topology(String query, String prefix, String output, long q4WindowMs, Properties config) {
        StreamsBuilder builder = new StreamsBuilder(new TopologyConfig(new StreamsConfig(config)));
        String personTopic = prefix + "-person";
        String auctionTopic = prefix + "-auction";
        String bidTopic = prefix + "-bid";
        Serde<String> str = Serdes.String();
        switch (query) {
            case "q0" -> Nexmark.<Bid>events(builder, bidTopic, BID_READER)
                    .to(output, Produced.with(str, json(Bid.class)));
            case "q1" -> Nexmark.<Bid>events(builder, bidTopic, BID_READER)
                    .mapValues(b -> new Q1(b.auction(), b.bidder(), b.price() * 908 / 1000, b.dateTime()))
                    .to(output, Produced.with(str, json(Q1.class)));
            case "q2" -> Nexmark.<Bid>events(builder, bidTopic, BID_READER)
                    .filter((k, b) -> b.auction() % 123 == 0)
                    .mapValues(b -> new Q2(b.auction(), b.price()))
                    .to(output, Produced.with(str, json(Q2.class)));
            case "q3" -> {
                KTable<String, Auction> auctions = builder
                        .table(auctionTopic, Consumed.with(str, lenientJson(Auction.class)),
                                kvStore("q3-auctions", str, json(Auction.class)))
                        .filter((id, a) -> a.category() == 10);
                KTable<String, Person> persons = builder
                        .table(personTopic, Consumed.with(str, lenientJson(Person.class)),
                                kvStore("q3-persons", str, json(Person.class)))
                        .filter((id, p) -> List.of("OR", "ID", "CA").contains(p.state()));
                // Both partitioners: subscriptions must reach the task that
                // holds the person (person id % 4) and responses the task
                // that holds the auction (auction id % 4).
                auctions.join(persons, a -> Long.toString(a.seller()),
                                (a, p) -> new Q3(p.name(), p.city(), p.state(), a.id()),
                                TableJoined.<String, String>with(byNumber(), byNumber()).withName("q3-join"),
                                kvStore("q3-joined", str, json(Q3.class)))
                        .toStream()
                        .to(output, Produced.with(str, json(Q3.class)));
            }
            case "q4" -> {
                KStream<String, Bid> bids = events(builder, bidTopic, BID_READER);
                KStream<String, Auction> auctions = events(builder, auctionTopic, AUCTION_READER);
                // Both keyed by auction id and partitioned by it: no repartition.
                bids.join(auctions,
                                BidAuction::new,
                                JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(q4WindowMs),
                                        Duration.ofHours(1)),
                                StreamJoined.with(str, json(Bid.class), json(Auction.class))
                                        .withName("q4-join").withStoreName("q4-join"))
                        .filter((id, ba) -> ba.auction().dateTime() <= ba.bid().dateTime()
                                && ba.bid().dateTime() <= ba.auction().expires())
                        .mapValues(ba -> new CategoryPrice(ba.auction().category(), ba.bid().price()))
                        .groupByKey(Grouped.with(str, json(CategoryPrice.class)))
                        .reduce((x, y) -> y.price() > x.price() ? y : x,
                                kvStore("q4-max-price", str, json(CategoryPrice.class)))
                        .groupBy((id, cp) -> KeyValue.pair(Long.toString(cp.category()), cp.price()),
                                Grouped.with("q4-by-category", str, Serdes.Long()))
                        .aggregate(() -> new SumCount(0, 0),
                                (category, price, sc) -> new SumCount(sc.sum() + price, sc.count() + 1),
                                (category, price, sc) -> new SumCount(sc.sum() - price, sc.count() - 1),
                                kvStore("q4-sum-count", str, json(SumCount.class)))
                        .toStream()
                        // count 0 (every auction of the category gone): a tombstone.
                        .mapValues((category, sc) -> sc == null || sc.count() == 0
                                ? null
                                : new Q4(Long.parseLong(category), (double) sc.sum() / sc.count()))
                        .to(output, Produced.with(str, json(Q4.class)));
            }
            case "q5" -> Nexmark.<Bid>events(builder, bidTopic, BID_READER)
                    .groupByKey(Grouped.with(str, json(Bid.class)))
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(10), Duration.ZERO)
                            .advanceBy(Duration.ofSeconds(2)))
                    .emitStrategy(EmitStrategy.onWindowClose())
                    .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("q5-counts")
                            .withKeySerde(str).withValueSerde(Serdes.Long()).withRetention(WINDOW_RETENTION))
                    .toStream()
                    .map((w, count) -> KeyValue.pair(Long.toString(w.window().start()),
                            new Q5(w.window().start(), Long.parseLong(w.key()), count)))
                    .groupByKey(Grouped.with("q5-by-window", str, json(Q5.class)))
                    .reduce(Nexmark::hotter, kvStore("q5-hottest", str, json(Q5.class)))
                    .toStream()
                    .to(output, Produced.with(str, json(Q5.class)));
            case "q7" -> Nexmark.<Bid>events(builder, bidTopic, BID_READER)
                    .mapValues(b -> new PriceBid(b.auction(), b.bidder(), b.price()))
                    .groupByKey(Grouped.with(str, json(PriceBid.class)))
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(10), Duration.ZERO))
                    .emitStrategy(EmitStrategy.onWindowClose())
                    .reduce((a, b) -> higher(a, b, Function.identity()),
                            Materialized.<String, PriceBid, WindowStore<Bytes, byte[]>>as("q7-max-per-auction")
                                    .withKeySerde(str).withValueSerde(json(PriceBid.class))
                                    .withRetention(WINDOW_RETENTION))
                    .toStream()
                    .map((w, b) -> KeyValue.pair(Long.toString(w.window().start()),
                            new Q7(w.window().start(), b.auction(), b.bidder(), b.price())))
                    .groupByKey(Grouped.with("q7-by-window", str, json(Q7.class)))
                    .reduce((a, b) -> higher(a, b, q -> new PriceBid(q.auction(), q.bidder(), q.price())),
                            kvStore("q7-max", str, json(Q7.class)))
                    .toStream()
                    .to(output, Produced.with(str, json(Q7.class)));
            case "q8" -> {
                KStream<String, PersonName> persons = Nexmark.<Person>events(builder, personTopic, PERSON_READER)
                        .mapValues(p -> new PersonName(p.id(), p.name()));
                // Rekeyed by seller and partitioned as the person topic is
                // (seller % 4), so that the join is co-partitioned.
                KStream<String, Long> auctionsBySeller = Nexmark.<Auction>events(builder, auctionTopic,
                                AUCTION_READER)
                        .map((id, a) -> KeyValue.pair(Long.toString(a.seller()), a.id()))
                        .repartition(Repartitioned.<String, Long>as("q8-auctions-by-seller")
                                .withKeySerde(str).withValueSerde(Serdes.Long())
                                .withStreamPartitioner(byNumber()));
                persons.join(auctionsBySeller, (p, auction) -> new Q8(p.id(), p.name(), auction),
                                JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(10), Duration.ofHours(1)),
                                StreamJoined.with(str, json(PersonName.class), Serdes.Long())
                                        .withName("q8-join").withStoreName("q8-join"))
                        .to(output, Produced.with(str, json(Q8.class)));
            }
            default -> throw new IllegalArgumentException("unknown query " + query);
        }
        return builder.build();
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 8 && args.length != 9) {
            System.exit(KStreamsBench.usage("expected 8 or 9 arguments, got " + args.length, USAGE));
        }
        String query = args[0];
        String guarantee = args[1];
        if (!QUERIES.contains(query)) {
            System.exit(KStreamsBench.usage("unknown query '" + query + "'", USAGE));
        }
        if (!List.of("at_least_once", "exactly_once").contains(guarantee)) {
            System.exit(KStreamsBench.usage("unknown guarantee '" + guarantee + "'", USAGE));
        }
        long commitIntervalMs = KStreamsBench.nonNegative(args[7]);
        if (commitIntervalMs < 0) {
            System.exit(KStreamsBench.usage(
                    "commit-interval-ms must be a non-negative integer, got '" + args[7] + "'", USAGE));
        }
        long q4WindowMs = args.length == 9 ? KStreamsBench.nonNegative(args[8]) : DEFAULT_Q4_WINDOW_MS;
        if (q4WindowMs < 0) {
            System.exit(KStreamsBench.usage("q4-window-ms must be a non-negative integer, got '" + args[8] + "'",
                    USAGE));
        }
        int threads = KStreamsBench.threadsFromEnv();
        if (threads < 1) {
            System.exit(KStreamsBench.usage("KSTREAMS_THREADS must be a positive integer, got '"
                    + System.getenv("KSTREAMS_THREADS") + "'", USAGE));
        }
        Properties config = KStreamsBench.config(guarantee, args[2], args[5], args[6], commitIntervalMs, threads);
        // Only checks, when the topology is built, that every store and
        // internal topic has an explicit name (none named by a counter).
        config.put(StreamsConfig.ENSURE_EXPLICIT_INTERNAL_RESOURCE_NAMING_CONFIG, true);
        Topology topology = topology(query, args[3], args[4], q4WindowMs, config);
        if (System.getenv("NEXMARK_DESCRIBE") != null) {
            System.err.println(topology.describe());
        }
        KStreamsBench.run(topology, config);
    }
}
