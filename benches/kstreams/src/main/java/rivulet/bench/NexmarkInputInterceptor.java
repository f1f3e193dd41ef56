package rivulet.bench;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.apache.kafka.clients.producer.ProducerInterceptor;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;

/**
 * Test helper, not part of the benchmark: lets {@code kafka-console-producer}
 * write Nexmark input the way the spec loads it, which its options cannot
 * (it has no per-record partition or timestamp). Each record goes to
 * partition = its decimal key % 4 and gets timestamp = its value's
 * {@code dateTime}.
 *
 * <pre>
 * kafka-console-producer.sh ... --property parse.key=true \
 *     --producer-property interceptor.classes=rivulet.bench.NexmarkInputInterceptor
 * </pre>
 *
 * (with this jar on the tool's class path).
 */
public final class NexmarkInputInterceptor implements ProducerInterceptor<byte[], byte[]> {

    static final int PARTITIONS = 4;

    @Override
    public ProducerRecord<byte[], byte[]> onSend(ProducerRecord<byte[], byte[]> record) {
        try {
            long id = Long.parseLong(new String(record.key(), StandardCharsets.UTF_8).trim());
            JsonNode value = KStreamsBench.JSON.readTree(record.value());
            long dateTime = value.get("dateTime").asLong();
            return new ProducerRecord<>(record.topic(), (int) Math.floorMod(id, (long) PARTITIONS), dateTime,
                    record.key(), record.value(), record.headers());
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("not a Nexmark input record (decimal key, JSON value with dateTime): "
                    + e, e);
        }
    }

    @Override
    public void onAcknowledgement(RecordMetadata metadata, Exception exception) {}

    @Override
    public void close() {}

    @Override
    public void configure(Map<String, ?> configs) {}
}
