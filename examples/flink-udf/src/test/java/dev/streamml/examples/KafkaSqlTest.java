package dev.streamml.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.streamml.flink.RowScorer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The example as a user runs it: score.sql registers the function from the shaded UDF jar
 * (CREATE FUNCTION ... USING JAR) and scores a Kafka topic into another, against a real broker
 * ($STREAMML_KAFKA_BOOTSTRAP, else the one scripts/kafka.sh starts on 127.0.0.1:19092).
 */
class KafkaSqlTest {
  @RegisterExtension
  static final MiniClusterExtension MINI_CLUSTER = new MiniClusterExtension(
      new MiniClusterResourceConfiguration.Builder()
          .setNumberTaskManagers(1).setNumberSlotsPerTaskManager(1).build());

  static final int ROWS = 400;
  private String bootstrap;
  private String inTopic;
  private String outTopic;

  @BeforeEach
  void topics() throws Exception {
    String env = System.getenv("STREAMML_KAFKA_BOOTSTRAP");
    bootstrap = env != null && !env.isEmpty() ? env : "127.0.0.1:19092";
    String run = UUID.randomUUID().toString();
    inTopic = "streamml-flink-in-" + run;
    outTopic = "streamml-flink-out-" + run;
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
      admin.createTopics(List.of(new NewTopic(inTopic, 2, (short) 1), new NewTopic(outTopic, 1, (short) 1)))
          .all().get();
    }
  }

  @AfterEach
  void deleteTopics() throws Exception {
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
      admin.deleteTopics(List.of(inTopic, outTopic)).all().get();
    }
  }

  static double[] features(long id) {
    SplittableRandom rng = new SplittableRandom(1000 + id);
    double[] x = new double[32];
    for (int i = 0; i < 32; i++) {
      x[i] = rng.nextDouble() * 4 - 2;
    }
    return x;
  }

  static String json(long id, double[] x) {
    StringBuilder sb = new StringBuilder("{\"id\":").append(id);
    for (int i = 0; i < x.length; i++) {
      sb.append(",\"x").append(i).append("\":").append(x[i]);
    }
    return sb.append('}').toString();
  }

  @Test
  void scoreSqlScoresAKafkaTopicIntoAnotherWithTheUdfJar() throws Exception {
    String model = Path.of(System.getProperty("streamml.models"), "s1_logistic.so").toAbsolutePath().toString();
    Properties producerProps = new Properties();
    producerProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    try (KafkaProducer<String, String> producer =
        new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
      for (long id = 0; id < ROWS; id++) {
        producer.send(new ProducerRecord<>(inTopic, String.valueOf(id), json(id, features(id))));
      }
      producer.flush();
    }

    String script = Files.readString(Path.of(System.getProperty("streamml.sql")))
        .replace("${UDF_JAR}", Path.of(System.getProperty("streamml.udf.jar")).toUri().toString())
        .replace("${MODEL}", model)
        .replace("${BOOTSTRAP}", bootstrap)
        .replace("${IN_TOPIC}", inTopic)
        .replace("${OUT_TOPIC}", outTopic)
        .replace("${SCAN_BOUNDED_MODE}", "latest-offset");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    TableResult last = null;
    for (String statement : statements(script)) {
      if (statement.startsWith("SET ")) {
        Matcher m = Pattern.compile("SET '([^']+)' = '([^']*)'").matcher(statement);
        assertTrue(m.matches(), statement);
        tEnv.getConfig().getConfiguration().setString(m.group(1), m.group(2));
      } else {
        last = tEnv.executeSql(statement);
      }
    }
    assertNotNull(last);
    last.await();

    Map<Long, Double> scores = new HashMap<>();
    Properties consumerProps = new Properties();
    consumerProps.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    consumerProps.put(ConsumerConfig.GROUP_ID_CONFIG, "check-" + outTopic);
    consumerProps.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    Pattern row = Pattern.compile("\\{\"id\":(\\d+),\"probability\":([^}]+)}");
    try (KafkaConsumer<String, String> consumer =
        new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
      consumer.subscribe(List.of(outTopic));
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (scores.size() < ROWS && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          Matcher m = row.matcher(r.value());
          assertTrue(m.matches(), r.value());
          scores.merge(Long.parseLong(m.group(1)), Double.parseDouble(m.group(2)), (a, b) -> {
            throw new AssertionError("id " + m.group(1) + " scored twice");
          });
        }
      }
    }
    assertEquals(ROWS, scores.size());
    try (RowScorer scorer = RowScorer.open(model, "probability")) {
      List<Object[]> rows = new ArrayList<>();
      for (long id = 0; id < ROWS; id++) {
        double[] x = features(id);
        Object[] boxed = new Object[32];
        for (int i = 0; i < 32; i++) {
          boxed[i] = x[i];
        }
        rows.add(boxed);
      }
      RowScorer.Result expected = scorer.score(rows);
      for (int id = 0; id < ROWS; id++) {
        assertEquals(expected.value(id), scores.get((long) id), "id " + id);
      }
    }
  }

  /** The script's statements, comments dropped. */
  static List<String> statements(String script) {
    StringBuilder sql = new StringBuilder();
    for (String line : script.split("\n")) {
      if (!line.strip().startsWith("--")) {
        sql.append(line).append('\n');
      }
    }
    List<String> out = new ArrayList<>();
    for (String s : sql.toString().split(";\\s*\n")) {
      if (!s.isBlank()) {
        out.add(s.strip());
      }
    }
    return out;
  }
}
