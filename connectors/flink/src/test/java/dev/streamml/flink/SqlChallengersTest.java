package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.flink.api.common.JobID;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Metric;
import org.apache.flink.runtime.testutils.InMemoryReporter;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.ExceptionUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Champion/challenger (shadow) and canary in Flink SQL (issue 26): {@code ML_PREDICT} with the
 * {@code challengers}, {@code canary} and {@code canary-id} model options, sync and async; the
 * shadow column UNNESTed into a sink table of its own by a STATEMENT SET; exact scores per version.
 */
class SqlChallengersTest {
  static final InMemoryReporter REPORTER = InMemoryReporter.createWithRetainedMetrics();

  @RegisterExtension
  static final MiniClusterExtension MINI_CLUSTER = new MiniClusterExtension(
      new MiniClusterResourceConfiguration.Builder()
          .setConfiguration(REPORTER.addToConfiguration(new Configuration()))
          .setNumberTaskManagers(1)
          .setNumberSlotsPerTaskManager(2)
          .build());

  static final String X = "x0 DOUBLE, x1 DOUBLE, x2 DOUBLE, x3 DOUBLE";
  static final String SHADOW = "shadow ARRAY<ROW<model_version STRING, probability DOUBLE>>";

  @TempDir Path tmp;

  /** A table environment (parallelism 1) with the events 0..n-1 as table {@code t}. */
  private static StreamTableEnvironment events(int n, boolean slow) {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    tEnv.createTemporaryView("t", tEnv.fromDataStream(env.fromSequence(0, n - 1)
        .map(id -> {
          if (slow) {
            Thread.sleep(1);
          }
          return Versions.row(id);
        })
        .returns(Versions.inputType())));
    return tEnv;
  }

  private static String mode(boolean async) {
    return "MAP['async', '" + async + "', 'max-concurrent-operations', '256']";
  }

  private static long metric(JobID job, String pattern) {
    Map<String, Metric> found = REPORTER.findMetrics(job, pattern);
    assertTrue(!found.isEmpty(), "no metric " + pattern);
    return found.values().stream().mapToLong(m -> ((Counter) m).getCount()).sum();
  }

  @Test
  void twoChallengersShadowEveryRowIntoTheirOwnSinkTableSyncAndAsync() throws Exception {
    int n = 300;
    Path dir = Versions.directory(tmp.resolve("fraud"));
    ModelReference.setAlias(dir, "challenger", "2");
    Map<String, double[]> expected = Versions.expected(n, List.of("1", "2", "3"));
    for (boolean async : List.of(false, true)) {
      StreamTableEnvironment tEnv = events(n, false);
      tEnv.executeSql("CREATE MODEL m INPUT (" + X + ") OUTPUT (probability DOUBLE, model_version STRING, "
          + SHADOW + ") WITH ('provider' = 'streamml', 'path' = '" + dir + "', 'challengers' = '" + dir
          + "@challenger, " + Versions.binary("3") + "', 'max-batch-rows' = '32', 'max-wait' = '5 ms')");
      tEnv.executeSql("CREATE TABLE served (id BIGINT, probability DOUBLE, model_version STRING)"
          + " WITH ('connector' = 'test-collect', 'name' = 'served-" + async + "')");
      tEnv.executeSql("CREATE TABLE shadow_scores (id BIGINT, model_version STRING, probability DOUBLE)"
          + " WITH ('connector' = 'test-collect', 'name' = 'shadow-" + async + "')");
      tEnv.executeSql("CREATE TEMPORARY VIEW scored AS SELECT * FROM ML_PREDICT(TABLE t, MODEL m,"
          + " DESCRIPTOR(x0, x1, x2, x3), " + mode(async) + ")");
      long before = NativeModel.totalPredictCalls();
      tEnv.executeSql("EXECUTE STATEMENT SET BEGIN "
          + "INSERT INTO served SELECT id, probability, model_version FROM scored; "
          + "INSERT INTO shadow_scores SELECT s.id, v.model_version, v.probability FROM scored AS s"
          + " CROSS JOIN UNNEST(s.shadow) AS v(model_version, probability); "
          + "END").await();
      long calls = NativeModel.totalPredictCalls() - before;
      if (!async) {
        assertEquals(3L * n, calls, "each version scores each row once (one ML_PREDICT for both sinks)");
      } else {
        assertTrue(calls <= 3L * n / 4, "batched: " + calls + " native calls");
      }
      List<Row> served = CollectSinkFactory.rows("served-" + async);
      assertEquals(n, served.size());
      Set<Long> ids = new HashSet<>();
      for (Row r : served) {
        long id = (Long) r.getField(0);
        assertTrue(ids.add(id), "event " + id + " twice");
        assertEquals("1", r.getField(2));
        assertEquals(expected.get("1")[(int) id], r.getField(1), "event " + id);
      }
      List<Row> shadow = CollectSinkFactory.rows("shadow-" + async);
      assertEquals(2 * n, shadow.size());
      Map<String, Set<Long>> idsByVersion = new HashMap<>();
      for (Row r : shadow) {
        long id = (Long) r.getField(0);
        String version = (String) r.getField(1);
        assertTrue(idsByVersion.computeIfAbsent(version, v -> new HashSet<>()).add(id), version + " " + id);
        assertEquals(expected.get(version)[(int) id], r.getField(2), "event " + id + " by " + version);
      }
      assertEquals(Set.of("2", "3"), idsByVersion.keySet());
      assertEquals(n, idsByVersion.get("2").size());
      assertEquals(n, idsByVersion.get("3").size());
    }
  }

  /** Run a canary job: rows of id, probability, model_version, served_by, shadow. */
  private static List<Row> canary(Path dir, int n, boolean async, double fraction) throws Exception {
    StreamTableEnvironment tEnv = events(n, false);
    tEnv.executeSql("CREATE MODEL c INPUT (id BIGINT, " + X + ") OUTPUT (probability DOUBLE, model_version STRING,"
        + " served_by STRING, " + SHADOW + ") WITH ('provider' = 'streamml', 'path' = '" + dir + "', 'challengers' = '"
        + dir + "@challenger', 'canary' = '" + fraction + "', 'canary-id' = 'id', 'max-batch-rows' = '256')");
    return FlinkTestSupport.collect(tEnv, "SELECT id, probability, model_version, served_by, shadow FROM ML_PREDICT("
        + "TABLE t, MODEL c, DESCRIPTOR(id, x0, x1, x2, x3), " + mode(async) + ")");
  }

  private static void assertCanary(List<Row> out, int n, double fraction, Map<String, double[]> expected) {
    assertEquals(n, out.size());
    Set<Long> ids = new HashSet<>();
    int canaries = 0;
    for (Row r : out) {
      long id = (Long) r.getField(0);
      assertTrue(ids.add(id), "event " + id + " twice");
      boolean canary = ModelLifecycle.canaryShare(id) < fraction;
      canaries += canary ? 1 : 0;
      String version = canary ? "2" : "1";
      String other = canary ? "1" : "2";
      assertEquals(List.of(version, canary ? "canary" : "champion"), List.of(r.getField(2), r.getField(3)),
          "event " + id);
      assertEquals(expected.get(version)[(int) id], r.getField(1), "event " + id);
      Row[] shadow = (Row[]) r.getField(4);
      assertEquals(1, shadow.length, "event " + id + ": the version that did not serve it");
      assertEquals(other, shadow[0].getField(0));
      assertEquals(expected.get(other)[(int) id], shadow[0].getField(1), "event " + id + " by " + other);
    }
    if (n >= 20_000) { // fewer ids: a share of +-1 % is within sampling noise of a fair rule
      assertTrue(Math.abs(canaries / (double) n - fraction) <= 0.01, "canary share " + canaries + " of " + n);
    }
    assertTrue(canaries > 0 && canaries < n, "both sides served: " + canaries);
  }

  @Test
  void theCanaryRuleIsTheSharedTableS() throws Exception {
    String path = System.getProperty("streamml.canary", "../../tests/fixtures/canary.json");
    com.fasterxml.jackson.databind.JsonNode table = new com.fasterxml.jackson.databind.ObjectMapper()
        .readTree(new java.io.File(path));
    assertEquals(15, table.get("cases").size());
    for (com.fasterxml.jackson.databind.JsonNode c : table.get("cases")) {
      Object id = c.get("id").isNumber() ? (Object) c.get("id").bigIntegerValue() : c.get("id").asText();
      double share = ModelLifecycle.canaryShare(id);
      assertEquals(c.get("share").asDouble(), share, c.toString());
      assertEquals(c.get("canary_at_0.1").asBoolean(), share < 0.1, c.toString());
    }
  }

  @Test
  void aCanaryServesItsShareWithTheChallengerByTheSharedRuleAsync() throws Exception {
    int n = 20_000;
    Path dir = Versions.directory(tmp.resolve("fraud"));
    ModelReference.setAlias(dir, "challenger", "2");
    Map<String, double[]> expected = Versions.expected(n, List.of("1", "2"));
    assertCanary(canary(dir, n, true, 0.1), n, 0.1, expected);
  }

  @Test
  void aCanaryServesItsShareWithTheChallengerSync() throws Exception {
    int n = 2_000;
    Path dir = Versions.directory(tmp.resolve("fraud"));
    ModelReference.setAlias(dir, "challenger", "2");
    Map<String, double[]> expected = Versions.expected(n, List.of("1", "2"));
    assertCanary(canary(dir, n, false, 0.3), n, 0.3, expected);
  }

  @Test
  void versionsNeverGoBackWhileBothAliasesMoveAndACorruptChallengerIsRefused() throws Exception {
    int n = 4000;
    Path dir = Versions.directory(tmp.resolve("fraud"));
    Versions.corrupt(dir, "5");
    ModelReference.setAlias(dir, "challenger", "2");
    Map<String, double[]> expected = Versions.expected(n, List.of("1", "2", "3", "4"));
    StreamTableEnvironment tEnv = events(n, true);
    tEnv.executeSql("CREATE MODEL m INPUT (" + X + ") OUTPUT (probability DOUBLE, model_version STRING, " + SHADOW
        + ") WITH ('provider' = 'streamml', 'path' = '" + dir + "', 'challengers' = '" + dir + "@challenger',"
        + " 'reload-interval' = '30 ms', 'max-batch-rows' = '64', 'max-wait' = '5 ms')");
    // champion 1 -> 2 -> 3; challenger 2 -> 5 (corrupt: refused, 2 shadows on) -> 3 -> 4
    List<String[]> moves = List.of(new String[] {"champion", "2", "2"}, new String[] {"challenger", "5", null},
        new String[] {"challenger", "3", null}, new String[] {"champion", "3", "3"},
        new String[] {"challenger", "4", null});
    List<Row> out = new ArrayList<>();
    JobID job;
    TableResult result = tEnv.executeSql("SELECT id, probability, model_version, shadow FROM ML_PREDICT("
        + "TABLE t, MODEL m, DESCRIPTOR(x0, x1, x2, x3), " + mode(true) + ")");
    job = result.getJobClient().orElseThrow().getJobID();
    try (CloseableIterator<Row> it = result.collect()) {
      int k = 0;
      String awaited = null;
      while (it.hasNext()) {
        Row r = it.next();
        out.add(r);
        if (awaited != null && awaited.equals(r.getField(2))) {
          awaited = null;
        }
        if (awaited == null && k < moves.size() && out.size() >= (k + 1) * n / (moves.size() + 2)) {
          ModelReference.setAlias(dir, moves.get(k)[0], moves.get(k)[1]);
          awaited = moves.get(k)[2];
          k++;
        }
      }
      assertEquals(moves.size(), k, "every move made before the input ended");
    }
    assertEquals(n, out.size());
    out.sort((a, b) -> Long.compare((Long) a.getField(0), (Long) b.getField(0)));
    int champion = 0;
    int challenger = 0;
    Set<String> championSeen = new TreeSet<>();
    Set<String> challengerSeen = new TreeSet<>();
    for (int i = 0; i < n; i++) {
      Row r = out.get(i);
      assertEquals((long) i, r.getField(0), "every event once");
      String version = (String) r.getField(2);
      assertEquals(expected.get(version)[i], r.getField(1), "event " + i + " by " + version);
      Row[] shadow = (Row[]) r.getField(3);
      assertEquals(1, shadow.length, "event " + i);
      String shadowVersion = (String) shadow[0].getField(0);
      assertEquals(expected.get(shadowVersion)[i], shadow[0].getField(1), "event " + i + " by " + shadowVersion);
      assertTrue(Integer.parseInt(version) >= champion, "event " + i + ": champion went back to " + version);
      assertTrue(Integer.parseInt(shadowVersion) >= challenger, "event " + i + ": challenger went back to "
          + shadowVersion);
      champion = Integer.parseInt(version);
      challenger = Integer.parseInt(shadowVersion);
      championSeen.add(version);
      challengerSeen.add(shadowVersion);
    }
    assertEquals(Set.of("1", "2", "3"), championSeen);
    assertEquals(Set.of("2", "3", "4"), challengerSeen);
    assertEquals(1, metric(job, ".*challenger\\.1\\.modelRefused"), "the corrupt challenger, refused once");
    assertEquals(0, metric(job, ".*challenger\\.1\\.challengerFailures"));
    assertEquals(2, metric(job, ".*challenger\\.1\\.modelSwaps"), "challenger 2 -> 3 -> 4");
  }

  @Test
  void aChallengerThatCannotLoadAtStartFailsTheTaskAsTheChampionWould() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    Versions.corrupt(dir, "5");
    ModelReference.setAlias(dir, "bad", "5");
    for (boolean async : List.of(false, true)) {
      StreamTableEnvironment tEnv = events(10, false);
      tEnv.executeSql("CREATE MODEL m INPUT (" + X + ") OUTPUT (probability DOUBLE, model_version STRING, " + SHADOW
          + ") WITH ('provider' = 'streamml', 'path' = '" + dir + "', 'challengers' = '"
          + Versions.binary("3") + "," + dir + "@bad')");
      Exception e = assertThrows(Exception.class, () -> FlinkTestSupport.collect(tEnv,
          "SELECT id, probability, model_version, shadow FROM ML_PREDICT(TABLE t, MODEL m, "
          + "DESCRIPTOR(x0, x1, x2, x3), " + mode(async) + ")"));
      Throwable root = ExceptionUtils.findThrowable(e, ModelException.class).orElseThrow(() -> new AssertionError(
          ExceptionUtils.stringifyException(e)));
      String m = root.getMessage();
      assertTrue(m.startsWith("cannot load model binary '" + dir.resolve("5.so") + "': not a well-formed shared"
          + " library for this machine: its section headers ") && m.endsWith(": the file is truncated"), m);
      assertEquals(ModelException.class, root.getClass(), async ? "async" : "sync");
    }
  }

  private static String refusal(String inputs, String outputs, String options, String descriptor) {
    StreamTableEnvironment tEnv = events(3, false);
    tEnv.executeSql("CREATE MODEL m INPUT (" + inputs + ") OUTPUT (" + outputs + ") WITH ('provider' = 'streamml',"
        + " 'path' = '" + Versions.binary("1") + "'" + options + ")");
    Exception e = assertThrows(Exception.class, () -> FlinkTestSupport.collect(tEnv, "SELECT * FROM ML_PREDICT("
        + "TABLE t, MODEL m, DESCRIPTOR(" + descriptor + "))"));
    Throwable root = ExceptionUtils.findThrowable(e, ModelException.class).orElseThrow(() -> new AssertionError(
        ExceptionUtils.stringifyException(e)));
    return root.getMessage();
  }

  @Test
  void misdeclaredChallengersAndCanariesAreRefusedWithExactMessages() {
    String x = "x0, x1, x2, x3";
    String two = ", 'challengers' = '" + Versions.binary("2") + "," + Versions.binary("3") + "'";
    assertEquals("'canary' needs exactly one model in 'challengers' (the version that serves the canary share), got 2",
        refusal("id BIGINT, " + X, "probability DOUBLE", two + ", 'canary' = '0.1', 'canary-id' = 'id'", "id, " + x));
    assertEquals("'canary' needs exactly one model in 'challengers' (the version that serves the canary share), got 0",
        refusal("id BIGINT, " + X, "probability DOUBLE", ", 'canary' = '0.1', 'canary-id' = 'id'", "id, " + x));
    String one = ", 'challengers' = '" + Versions.binary("2") + "'";
    assertEquals("'canary' needs 'canary-id': the INPUT column (listed in the DESCRIPTOR) holding the event id",
        refusal(X, "probability DOUBLE", one + ", 'canary' = '0.1'", x));
    assertEquals("'canary-id' = 'event' is not an INPUT column of the model; its INPUT columns are [x0, x1, x2, x3]"
        + " (declare the id column in INPUT and list it in the DESCRIPTOR)",
        refusal(X, "probability DOUBLE", one + ", 'canary' = '0.1', 'canary-id' = 'event'", x));
    assertEquals("'canary' must be a fraction in (0, 1], got 1.5",
        refusal("id BIGINT, " + X, "probability DOUBLE", one + ", 'canary' = '1.5', 'canary-id' = 'id'", "id, " + x));
    assertEquals("OUTPUT column 'shadow' holds the challengers' outputs, but the model has no 'challengers' option;"
        + " add 'challengers' = '<reference>[,<reference>...]' or drop the column",
        refusal(X, "probability DOUBLE, " + SHADOW, "", x));
    assertEquals("OUTPUT column 'shadow' must be ARRAY<ROW<model_version STRING, <output> <type>, ...>> (one element"
        + " per version that did not serve the row: its version, then model outputs by name), got MAP<STRING, DOUBLE>",
        refusal(X, "probability DOUBLE, shadow MAP<STRING, DOUBLE>", one, x));
    assertEquals("OUTPUT column 'shadow' must be ARRAY<ROW<model_version STRING, <output> <type>, ...>> (one element"
        + " per version that did not serve the row: its version, then model outputs by name), got"
        + " ARRAY<ROW<`version` STRING, `probability` DOUBLE>>",
        refusal(X, "probability DOUBLE, shadow ARRAY<ROW<version STRING, probability DOUBLE>>", one, x));
    assertEquals("OUTPUT column 'served_by' names the side that served a row with a canary, but the model has no"
        + " 'canary' option; add 'canary' and 'canary-id' or drop the column",
        refusal(X, "probability DOUBLE, served_by STRING, " + SHADOW, one, x));
    assertEquals("OUTPUT column 'served_by' must be STRING, got INT",
        refusal("id BIGINT, " + X, "probability DOUBLE, served_by INT", one + ", 'canary' = '0.1', 'canary-id' = 'id'",
            "id, " + x));
    assertEquals("'challengers' without an OUTPUT column 'shadow' (or a 'canary'): the challengers' outputs would go"
        + " nowhere; declare shadow ARRAY<ROW<model_version STRING, <output> <type>, ...>>",
        refusal(X, "probability DOUBLE", one, x));
    assertEquals("'canary-id' = 'id' without 'canary': set 'canary' to the fraction of events the challenger serves,"
        + " or drop 'canary-id'", refusal("id BIGINT, " + X, "probability DOUBLE", one + ", 'canary-id' = 'id'",
            "id, " + x));
    assertEquals("model binary '" + Versions.binary("1") + "' has no output 'score' (a field of the shadow column's"
        + " ROW) (declared in CREATE MODEL ... OUTPUT); its outputs are [probability, label]",
        refusal(X, "probability DOUBLE, shadow ARRAY<ROW<model_version STRING, score DOUBLE>>", one, x));
  }
}
