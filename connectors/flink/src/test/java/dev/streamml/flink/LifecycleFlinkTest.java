package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Metric;
import org.apache.flink.runtime.testutils.InMemoryReporter;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hot swap in running Flink jobs (issue 26): the champion alias of a model directory moves three
 * times (and once to a corrupt binary) while a job scores; every event is scored exactly once, by
 * versions that never go backwards per subtask, each output's score is its named version's, every
 * version appears, and the corrupt one is refused (the {@code modelRefused} metric is 1). Shadow:
 * every version's prediction of every event reaches the side output.
 */
class LifecycleFlinkTest {
  static final InMemoryReporter REPORTER = InMemoryReporter.createWithRetainedMetrics();

  @RegisterExtension
  static final MiniClusterExtension MINI_CLUSTER = new MiniClusterExtension(
      new MiniClusterResourceConfiguration.Builder()
          .setConfiguration(REPORTER.addToConfiguration(new Configuration()))
          .setNumberTaskManagers(1)
          .setNumberSlotsPerTaskManager(2)
          .build());

  static final int EVENTS = 4000;
  static final Duration RELOAD = Duration.ofMillis(30);

  @TempDir Path tmp;

  /** Events 0..n-1 at about a row per millisecond per subtask, so the job outlives the moves. */
  private static DataStream<Row> events(StreamExecutionEnvironment env, int n, boolean slow) {
    return env.fromSequence(0, n - 1)
        .map(id -> {
          if (slow) {
            Thread.sleep(1);
          }
          return Versions.row(id);
        })
        .returns(Versions.inputType());
  }

  /** Tag each row with the subtask that scored it (chained to the operator: the same subtask). */
  static final class Subtask extends RichMapFunction<Row, Row> {
    private int index;

    @Override
    public void open(OpenContext context) {
      index = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
    }

    @Override
    public Row map(Row row) {
      // id, probability, error, model_version, subtask
      int n = row.getArity();
      return Row.of(row.getField(0), row.getField(Versions.FEATURES + 1), row.getField(n - 2),
          row.getField(n - 1), index);
    }
  }

  /**
   * Read the job's outputs, moving the alias to {@code moves[k]} after {@code (k + 1) * EVENTS /
   * (moves + 1)} outputs, then reading until {@code waitFor[k]} (if any) scores an output.
   */
  private static List<Row> readWhileMoving(CloseableIterator<Row> it, Path dir, int versionField,
      List<String> moves, List<String> waitFor) throws Exception {
    List<Row> out = new ArrayList<>();
    int k = 0;
    String awaited = null;
    while (it.hasNext()) {
      Row r = it.next();
      out.add(r);
      if (awaited != null && awaited.equals(r.getField(versionField))) {
        awaited = null;
      }
      if (awaited == null && k < moves.size() && out.size() >= (k + 1) * EVENTS / (moves.size() + 2)) {
        ModelReference.setAlias(dir, "champion", moves.get(k));
        awaited = waitFor.get(k);
        k++;
      }
    }
    assertEquals(moves.size(), k, "every move made before the input ended");
    return out;
  }

  private static void assertScoredOnceByTheirVersions(List<Row> out, int idField, int scoreField,
      int versionField, Map<String, double[]> expected) {
    assertEquals(EVENTS, out.size());
    Set<Long> ids = new HashSet<>();
    for (Row r : out) {
      long id = ((Number) r.getField(idField)).longValue();
      assertTrue(ids.add(id), "event " + id + " scored twice");
      String version = (String) r.getField(versionField);
      assertEquals(expected.get(version)[(int) id], (Double) r.getField(scoreField),
          "event " + id + " scored by version " + version);
    }
    assertEquals(EVENTS, ids.size());
  }

  private static long metric(JobID job, String name) {
    Map<String, Metric> found = REPORTER.findMetrics(job, ".*\\." + name);
    return found.values().stream().mapToLong(m -> ((Counter) m).getCount()).sum();
  }

  @Test
  void theDataStreamOperatorSwapsBetweenBatchesWhileTheAliasMoves() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    Versions.corrupt(dir, "5");
    Map<String, double[]> expected = Versions.expected(EVENTS, List.of("1", "2", "3", "4"));
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(2);
    StreammlStreams.Predictions p = StreammlStreams.predict("score", events(env, EVENTS, true),
        ModelLifecycle.of(dir.toString()).reloadEvery(RELOAD), new BatchPolicy(64, Duration.ofMillis(5)));
    assertNull(p.shadow());
    DataStream<Row> tagged = p.oks().map(new Subtask())
        .returns(Types.ROW(Types.LONG, Types.DOUBLE, Types.STRING, Types.STRING, Types.INT));
    List<Row> out;
    JobID job;
    try (CloseableIterator<Row> it = tagged.collectAsync()) {
      JobClient client = env.executeAsync("swap");
      job = client.getJobID();
      // 2, then a corrupt binary (refused: 2 keeps serving), then 3 and 4.
      out = readWhileMoving(it, dir, 3, List.of("2", "5", "3", "4"), java.util.Arrays.asList("2", null, "3", "4"));
      client.getJobExecutionResult().get();
    }
    assertScoredOnceByTheirVersions(out, 0, 1, 3, expected);
    for (Row r : out) {
      assertNull(r.getField(2), "error");
    }
    Map<Integer, List<Integer>> bySubtask = new HashMap<>();
    for (Row r : out) {
      bySubtask.computeIfAbsent((Integer) r.getField(4), s -> new ArrayList<>())
          .add(Integer.parseInt((String) r.getField(3)));
    }
    for (Map.Entry<Integer, List<Integer>> e : bySubtask.entrySet()) {
      List<Integer> versions = e.getValue();
      for (int i = 1; i < versions.size(); i++) {
        assertTrue(versions.get(i) >= versions.get(i - 1),
            "subtask " + e.getKey() + " went back from " + versions.get(i - 1) + " to " + versions.get(i));
      }
    }
    Set<String> seen = out.stream().map(r -> (String) r.getField(3)).collect(Collectors.toCollection(TreeSet::new));
    assertEquals(Set.of("1", "2", "3", "4"), seen);
    assertEquals(2, metric(job, "modelRefused"), "the corrupt binary, refused once per subtask");
    assertEquals(6, metric(job, "modelSwaps"), "three swaps per subtask");
    assertEquals(0, metric(job, "modelResolveErrors"));
  }

  @Test
  void mlPredictSwapsBetweenBatchesAndNamesTheVersion() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    Map<String, double[]> expected = Versions.expected(EVENTS, List.of("1", "2", "3", "4"));
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    tEnv.createTemporaryView("t", tEnv.fromDataStream(events(env, EVENTS, true)));
    tEnv.executeSql("CREATE MODEL m INPUT (x0 DOUBLE, x1 DOUBLE, x2 DOUBLE, x3 DOUBLE)"
        + " OUTPUT (probability DOUBLE, model_version STRING) WITH ('provider' = 'streamml', 'path' = '"
        + dir + "', 'reload-interval' = '30 ms', 'max-batch-rows' = '64', 'max-wait' = '5 ms')");
    List<Row> out;
    try (CloseableIterator<Row> it = tEnv.executeSql("SELECT id, probability, model_version FROM ML_PREDICT("
        + "TABLE t, MODEL m, DESCRIPTOR(x0, x1, x2, x3), MAP['async', 'true', 'max-concurrent-operations', '256'])")
        .collect()) {
      out = readWhileMoving(it, dir, 2, List.of("2", "3", "4"), List.of("2", "3", "4"));
    }
    assertScoredOnceByTheirVersions(out, 0, 1, 2, expected);
    // One subtask: by event id (the input's order) the versions never go back.
    List<Row> byId = new ArrayList<>(out);
    byId.sort((a, b) -> Long.compare((Long) a.getField(0), (Long) b.getField(0)));
    for (int i = 1; i < byId.size(); i++) {
      int before = Integer.parseInt((String) byId.get(i - 1).getField(2));
      int now = Integer.parseInt((String) byId.get(i).getField(2));
      assertTrue(now >= before, "event " + byId.get(i).getField(0) + " went back from " + before + " to " + now);
    }
    Set<String> seen = out.stream().map(r -> (String) r.getField(2)).collect(Collectors.toCollection(TreeSet::new));
    assertEquals(Set.of("1", "2", "3", "4"), seen);
  }

  @Test
  void theShadowSideOutputHoldsEveryVersionsPredictionOfEveryEvent() throws Exception {
    int n = 300;
    Path dir = Versions.directory(tmp.resolve("fraud"));
    ModelReference.setAlias(dir, "challenger", "2");
    Map<String, double[]> expected = Versions.expected(n, List.of("1", "2", "3"));
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(2);
    StreammlStreams.Predictions p = StreammlStreams.predict("score", events(env, n, false),
        ModelLifecycle.of(dir.toString())
            .withChallengers(List.of(dir + "@challenger", Versions.binary("3").toString())),
        new BatchPolicy(32, Duration.ofMillis(5)));
    RowTypeInfo type = (RowTypeInfo) p.shadow().getType();
    assertEquals(List.of("id", "x0", "x1", "x2", "x3", "probability"),
        List.of(type.getFieldNames()).subList(0, 6));
    assertEquals("model_version", type.getFieldNames()[type.getArity() - 1]);
    try (CloseableIterator<Row> oks = p.oks().collectAsync(); CloseableIterator<Row> shadow = p.shadow().collectAsync()) {
      env.execute("shadow");
      List<Row> served = new ArrayList<>();
      oks.forEachRemaining(served::add);
      List<Row> all = new ArrayList<>();
      shadow.forEachRemaining(all::add);
      int last = type.getArity() - 1;
      assertEquals(n, served.size());
      for (Row r : served) {
        assertEquals("1", r.getField(last), "only the champion's rows go downstream");
        assertEquals(expected.get("1")[(int) (long) (Long) r.getField(0)], r.getField(5));
      }
      assertEquals(3 * n, all.size());
      Map<String, Set<Long>> idsByVersion = new HashMap<>();
      for (Row r : all) {
        String version = (String) r.getField(last);
        long id = (Long) r.getField(0);
        assertTrue(idsByVersion.computeIfAbsent(version, v -> new HashSet<>()).add(id), version + " " + id);
        assertEquals(expected.get(version)[(int) id], r.getField(5), "event " + id + " by " + version);
      }
      assertEquals(Set.of("1", "2", "3"), idsByVersion.keySet());
      for (Set<Long> ids : idsByVersion.values()) {
        assertEquals(n, ids.size());
      }
    }
  }

  @Test
  void theCanaryRuleIsTheOtherHostsAndKeepsItsFraction() {
    assertEquals(0.805519, Math.round(ModelLifecycle.canaryShare("event-1") * 1e6) / 1e6); // Python's doctest
    assertEquals(ModelLifecycle.canaryShare("1"), ModelLifecycle.canaryShare(1L));
    int canary = 0;
    for (long id = 0; id < 100_000; id++) {
      canary += ModelLifecycle.canaryShare(id) < 0.05 ? 1 : 0;
    }
    assertTrue(Math.abs(canary / 100_000.0 - 0.05) <= 0.01, "canary share " + canary);
  }

  @Test
  void aCanaryServesItsShareWithTheChallengerAndSaysSo() throws Exception {
    int n = 400;
    Path dir = Versions.directory(tmp.resolve("fraud"));
    ModelReference.setAlias(dir, "challenger", "2");
    Map<String, double[]> expected = Versions.expected(n, List.of("1", "2"));
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(2);
    StreammlStreams.Predictions p = StreammlStreams.predict("score", events(env, n, false),
        ModelLifecycle.of(dir.toString()).withChallengers(List.of(dir + "@challenger")).canary(0.3, "id"),
        new BatchPolicy(32, Duration.ofMillis(5)));
    RowTypeInfo type = (RowTypeInfo) p.oks().getType();
    int last = type.getArity() - 1;
    assertEquals(List.of("error", "model_version", "served_by"),
        List.of(type.getFieldNames()).subList(last - 2, last + 1));
    List<Row> served = new ArrayList<>();
    List<Row> shadow = new ArrayList<>();
    try (CloseableIterator<Row> oks = p.oks().collectAsync(); CloseableIterator<Row> all = p.shadow().collectAsync()) {
      env.execute("canary");
      oks.forEachRemaining(served::add);
      all.forEachRemaining(shadow::add);
    }
    assertEquals(n, served.size());
    int canaries = 0;
    for (Row r : served) {
      long id = (Long) r.getField(0);
      boolean canary = ModelLifecycle.canaryShare(id) < 0.3;
      canaries += canary ? 1 : 0;
      assertEquals(canary ? List.of("2", "canary") : List.of("1", "champion"),
          List.of(r.getField(last - 1), r.getField(last)), "event " + id);
      assertEquals(expected.get(canary ? "2" : "1")[(int) id], r.getField(5), "event " + id);
    }
    assertTrue(canaries > 0 && canaries < n, "both sides served: " + canaries);
    assertEquals(2 * n, shadow.size());
    assertEquals(n, shadow.stream().filter(r -> r.getField(last) != null).count(), "one served row per event");
  }

  @Test
  void theBatchedSqlFunctionSwapsBetweenBatchesWhileTheAliasMoves() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    List<String> versions = List.of("1", "2", "3", "4");
    Map<String, double[]> expected = Versions.expected(EVENTS, versions);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    tEnv.getConfig().set("pipeline.global-job-parameters",
        "streamml.reload-interval:30ms,streamml.max-batch-rows:64,streamml.max-wait:5ms");
    tEnv.getConfig().set("table.exec.async-scalar.max-concurrent-operations", "256");
    tEnv.createTemporaryView("t", tEnv.fromDataStream(events(env, EVENTS, true)));
    tEnv.createTemporarySystemFunction("streamml_predict_batched", BatchingPredictFunction.class);
    List<Row> out = new ArrayList<>();
    // The function returns one DOUBLE: the version that scored a row is the one whose score it is
    // (the versions' scores of an event differ).
    Map<Double, String> versionOf = new HashMap<>();
    for (String v : versions) {
      for (double score : expected.get(v)) {
        versionOf.put(score, v);
      }
    }
    assertEquals(4 * EVENTS, versionOf.size(), "every version scores every event differently");
    try (CloseableIterator<Row> it = tEnv.executeSql("SELECT id, streamml_predict_batched('" + dir
        + "', x0, x1, x2, x3) AS p FROM t").collect()) {
      int k = 0;
      String awaited = null;
      List<String> moves = List.of("2", "3", "4");
      while (it.hasNext()) {
        Row r = it.next();
        out.add(Row.of(r.getField(0), r.getField(1), versionOf.get((Double) r.getField(1))));
        if (awaited != null && awaited.equals(out.get(out.size() - 1).getField(2))) {
          awaited = null;
        }
        if (awaited == null && k < moves.size() && out.size() >= (k + 1) * EVENTS / 5) {
          ModelReference.setAlias(dir, "champion", moves.get(k));
          awaited = moves.get(k++);
        }
      }
      assertEquals(3, k);
    }
    assertScoredOnceByTheirVersions(out, 0, 1, 2, expected);
    out.sort((a, b) -> Long.compare((Long) a.getField(0), (Long) b.getField(0)));
    for (int i = 1; i < out.size(); i++) {
      assertTrue(((String) out.get(i).getField(2)).compareTo((String) out.get(i - 1).getField(2)) >= 0,
          "event " + out.get(i).getField(0) + " went back");
    }
    assertEquals(Set.of("1", "2", "3", "4"),
        out.stream().map(r -> (String) r.getField(2)).collect(Collectors.toSet()));
  }
}
