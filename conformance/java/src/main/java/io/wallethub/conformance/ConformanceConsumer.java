package io.wallethub.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.ValidationMessage;
import io.cloudevents.CloudEvent;
import io.cloudevents.SpecVersion;
import io.cloudevents.kafka.CloudEventDeserializer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads Wallet Hub's topics with the official CloudEvents SDK for Java and checks every event:
 * its CloudEvents attributes, that its {@code dataschema} URL serves exactly our committed
 * schema, and that its data is valid against that schema. Exits 0 only if every event passed
 * and every expected type was seen; otherwise prints each failure and exits 1.
 *
 * <pre>
 * ConformanceConsumer --brokers HOST:PORT --topics T1,T2 --schemas DIR --expect-types TYPE,...
 *                     [--timeout-seconds 60]
 * </pre>
 */
public final class ConformanceConsumer {
  private static final String SOURCE = "/wallet-hub";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path schemasDir;
  private final HttpClient http = HttpClient.newHttpClient();
  private final Map<String, JsonSchema> schemas = new HashMap<>();
  private final Map<String, String> schemaTexts = new HashMap<>();
  private final List<String> failures = new ArrayList<>();
  private final Map<String, Integer> seen = new TreeMap<>();

  private ConformanceConsumer(Path schemasDir) {
    this.schemasDir = schemasDir;
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> options = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      options.put(args[i], args[i + 1]);
    }
    String brokers = required(options, "--brokers");
    List<String> topics = Arrays.asList(required(options, "--topics").split(","));
    Path schemasDir = Path.of(required(options, "--schemas"));
    Set<String> expected = new TreeSet<>(Arrays.asList(required(options, "--expect-types").split(",")));
    expected.remove("");
    Duration timeout = Duration.ofSeconds(Long.parseLong(options.getOrDefault("--timeout-seconds", "60")));

    ConformanceConsumer checker = new ConformanceConsumer(schemasDir);
    checker.consume(brokers, topics, expected, timeout);
    Set<String> missing = checker.missing(expected);
    if (!missing.isEmpty()) {
      checker.failures.add("no event of type(s) " + missing + " was read");
    }
    checker.seen.forEach((type, count) -> System.out.println("read " + count + " x " + type));
    if (!checker.failures.isEmpty()) {
      checker.failures.forEach(f -> System.err.println("FAIL: " + f));
      System.err.println(checker.failures.size() + " conformance failures");
      System.exit(1);
    }
    int total = checker.seen.values().stream().mapToInt(Integer::intValue).sum();
    System.out.println("conformance: " + total + " events of " + checker.seen.size() + " types passed");
  }

  private static String required(Map<String, String> options, String name) {
    String value = options.get(name);
    if (value == null) {
      System.err.println("missing " + name);
      System.exit(2);
    }
    return value;
  }

  private Set<String> missing(Set<String> expected) {
    Set<String> missing = new TreeSet<>(expected);
    missing.removeAll(seen.keySet());
    return missing;
  }

  /** Reads until every expected type was seen and the topics stayed quiet for 2 s, or timeout. */
  private void consume(String brokers, List<String> topics, Set<String> expected, Duration timeout) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    props.put(ConsumerConfig.GROUP_ID_CONFIG, "conformance-" + UUID.randomUUID());
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, CloudEventDeserializer.class);
    Instant deadline = Instant.now().plus(timeout);
    Instant quietUntil = null;
    try (KafkaConsumer<String, CloudEvent> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(topics);
      while (Instant.now().isBefore(deadline)) {
        var records = consumer.poll(Duration.ofMillis(500));
        for (ConsumerRecord<String, CloudEvent> record : records) {
          check(record);
        }
        if (!records.isEmpty()) {
          quietUntil = null;
        }
        if (missing(expected).isEmpty()) {
          if (quietUntil == null) {
            quietUntil = Instant.now().plusSeconds(2);
          } else if (Instant.now().isAfter(quietUntil)) {
            return;
          }
        }
      }
    }
  }

  private void check(ConsumerRecord<String, CloudEvent> record) {
    String where = record.topic() + "/" + record.partition() + "@" + record.offset();
    CloudEvent event = record.value();
    if (event == null) {
      failures.add(where + ": not a CloudEvent");
      return;
    }
    String type = event.getType();
    seen.merge(type, 1, Integer::sum);
    List<String> problems = new ArrayList<>();
    if (event.getSpecVersion() != SpecVersion.V1) {
      problems.add("specversion " + event.getSpecVersion());
    }
    if (event.getId() == null || event.getId().isEmpty()) {
      problems.add("no id");
    }
    if (!SOURCE.equals(String.valueOf(event.getSource()))) {
      problems.add("source " + event.getSource());
    }
    if (event.getTime() == null) {
      problems.add("no time");
    }
    if (!"application/json".equals(event.getDataContentType())) {
      problems.add("datacontenttype " + event.getDataContentType());
    }
    if (event.getSubject() == null || !event.getSubject().equals(record.key())) {
      problems.add("subject " + event.getSubject() + " is not the key " + record.key());
    }
    JsonSchema schema = schema(type, problems);
    URI dataschema = event.getDataSchema();
    if (dataschema == null) {
      problems.add("no dataschema");
    } else if (!dataschema.getPath().endsWith("/schemas/" + type + ".json")) {
      problems.add("dataschema " + dataschema + " is not the schema of " + type);
    } else if (schema != null) {
      try {
        HttpResponse<String> served = http.send(
            HttpRequest.newBuilder(dataschema).timeout(Duration.ofSeconds(10)).build(),
            HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        if (served.statusCode() != 200) {
          problems.add("dataschema " + dataschema + " answered " + served.statusCode());
        } else if (!served.body().equals(schemaTexts.get(type))) {
          problems.add("dataschema " + dataschema + " differs from schemas/" + type + ".json");
        }
      } catch (Exception e) {
        problems.add("dataschema " + dataschema + " does not resolve: " + e);
      }
    }
    if (event.getData() == null) {
      problems.add("no data");
    } else if (schema != null) {
      try {
        JsonNode data = JSON.readTree(event.getData().toBytes());
        Set<ValidationMessage> errors = schema.validate(data);
        errors.forEach(e -> problems.add("data: " + e.getMessage()));
        if (!event.getId().equals(data.path("event_id").asText())) {
          problems.add("data.event_id " + data.path("event_id") + " is not the id " + event.getId());
        }
      } catch (Exception e) {
        problems.add("data is not JSON: " + e.getMessage());
      }
    }
    problems.forEach(p -> failures.add(where + " " + type + " " + event.getId() + ": " + p));
  }

  /** The committed schema of a type, or null (and a problem) if we have none. */
  private JsonSchema schema(String type, List<String> problems) {
    if (schemas.containsKey(type)) {
      return schemas.get(type);
    }
    Path file = schemasDir.resolve(type + ".json");
    JsonSchema schema = null;
    try {
      String text = Files.readString(file, StandardCharsets.UTF_8);
      schemaTexts.put(type, text);
      schema = JsonSchemaFactory.getInstance(com.networknt.schema.SpecVersion.VersionFlag.V202012).getSchema(text);
    } catch (java.io.IOException e) {
      problems.add("unknown type: no " + file);
    }
    schemas.put(type, schema);
    return schema;
  }
}
