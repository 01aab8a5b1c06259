// The benchmark's stopwatch for the peer phase of scripts/bench-relay: how many records a
// topic holds, polled from the broker (the sum of its partitions' end offsets), one line
// "epoch_ms records" per poll, until it holds TARGET. One JVM for the whole run, so timing
// costs the same little CPU whichever process fills the topic.
//
//   java -cp 'KAFKA_LIBS/*' EndOffsets.java BOOTSTRAP TOPIC TARGET EVERY_MS
//
// Prints "ready" once it has the topic's partitions; exits 0 when the topic holds TARGET
// records or more.
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class EndOffsets {
    public static void main(String[] args) throws InterruptedException {
        String topic = args[1];
        long target = Long.parseLong(args[2]);
        long everyMs = Long.parseLong(args[3]);
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("client.id", "bench-relay-end-offsets");
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic)) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            System.out.println("ready");
            System.out.flush();
            while (true) {
                long records = 0;
                for (long end : consumer.endOffsets(partitions).values()) {
                    records += end;
                }
                System.out.println(System.currentTimeMillis() + " " + records);
                System.out.flush();
                if (records >= target) {
                    return;
                }
                Thread.sleep(everyMs);
            }
        }
    }
}
