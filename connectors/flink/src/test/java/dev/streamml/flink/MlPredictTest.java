package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.streamml.flink.Fixtures.FixtureRow;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.ExceptionUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Flink SQL's CREATE MODEL ... WITH ('provider' = 'streamml') and ML_PREDICT, in process. */
class MlPredictTest {
  @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = FlinkTestSupport.miniCluster();

  private static StreamTableEnvironment env(List<FixtureRow> rows, String model, String extra) {
    StreamTableEnvironment tEnv = FlinkTestSupport.tableEnv();
    tEnv.createTemporaryView("t", FlinkTestSupport.fixtureTable(tEnv, rows));
    String inputs = IntStream.range(0, Fixtures.FEATURES).mapToObj(i -> "x" + i + " DOUBLE")
        .collect(Collectors.joining(", "));
    tEnv.executeSql("CREATE MODEL m INPUT (" + inputs + ") OUTPUT (probability DOUBLE) WITH ("
        + "'provider' = 'streamml', 'path' = '" + model + "'" + extra + ")");
    return tEnv;
  }

  private static Map<Integer, Double> predict(StreamTableEnvironment tEnv, String config) throws Exception {
    List<Row> out = FlinkTestSupport.collect(tEnv, "SELECT id, probability FROM ML_PREDICT(TABLE t, MODEL m, "
        + "DESCRIPTOR(" + Fixtures.featureList() + ")" + config + ")");
    Map<Integer, Double> byId = new HashMap<>();
    for (Row r : out) {
      assertNull(byId.put((Integer) r.getField("id"), (Double) r.getField("probability")));
    }
    return byId;
  }

  @Test
  void mlPredictAsyncScoresInBatchesAndEqualsPython() throws Exception {
    List<FixtureRow> rows = Fixtures.rows();
    for (String name : List.of("s1", "lgbm")) {
      StreamTableEnvironment tEnv = env(rows, Fixtures.model(name), ", 'max-batch-rows' = '100', 'max-wait' = '200 ms'");
      long before = NativeModel.totalPredictCalls();
      Map<Integer, Double> got = predict(tEnv,
          ", MAP['async', 'true', 'max-concurrent-operations', '1000']");
      long calls = NativeModel.totalPredictCalls() - before;
      assertEquals(rows.size(), got.size());
      for (FixtureRow r : rows) {
        double expected = name.equals("s1") ? r.s1() : r.lgbm();
        assertEquals(Double.doubleToRawLongBits(expected), Double.doubleToRawLongBits(got.get(r.id())),
            name + " id " + r.id());
      }
      assertTrue(calls >= rows.size() / 100 && calls <= rows.size() / 10,
          "native calls for " + rows.size() + " rows: " + calls);
    }
  }

  @Test
  void mlPredictSyncScoresRowByRow() throws Exception {
    List<FixtureRow> rows = Fixtures.rows().subList(0, 40);
    StreamTableEnvironment tEnv = env(rows, Fixtures.model("s1"), "");
    long before = NativeModel.totalPredictCalls();
    Map<Integer, Double> got = predict(tEnv, ", MAP['async', 'false']");
    assertEquals(rows.size(), NativeModel.totalPredictCalls() - before);
    for (FixtureRow r : rows) {
      assertEquals(r.s1(), got.get(r.id()), "id " + r.id());
    }
  }

  @Test
  void anOutputTheBinaryLacksIsRefusedNamingIt() {
    List<FixtureRow> rows = Fixtures.rows().subList(0, 5);
    StreamTableEnvironment tEnv = FlinkTestSupport.tableEnv();
    tEnv.createTemporaryView("t", FlinkTestSupport.fixtureTable(tEnv, rows));
    String inputs = IntStream.range(0, Fixtures.FEATURES).mapToObj(i -> "x" + i + " DOUBLE")
        .collect(Collectors.joining(", "));
    tEnv.executeSql("CREATE MODEL m INPUT (" + inputs + ") OUTPUT (score DOUBLE) WITH ("
        + "'provider' = 'streamml', 'path' = '" + Fixtures.model("s1") + "')");
    Exception e = assertThrows(Exception.class, () -> FlinkTestSupport.collect(tEnv,
        "SELECT id, score FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(" + Fixtures.featureList() + "))"));
    assertTrue(ExceptionUtils.findThrowableWithMessage(e, "has no output 'score'").isPresent(),
        ExceptionUtils.stringifyException(e));
  }

  @Test
  void theTrustedModelsOptionRefusesAnUnlistedBinaryAndLoadsAListedOne() throws Exception {
    List<FixtureRow> rows = Fixtures.rows().subList(0, 5);
    java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("trust");
    java.nio.file.Path trust = dir.resolve("trusted.txt");
    String lgbmSha;
    try (NativeModel lgbm = NativeModel.load(Fixtures.model("lgbm"))) {
      lgbmSha = lgbm.sha256();
    }
    java.nio.file.Files.writeString(trust, lgbmSha + "  # the only model this job may run\n");
    String option = ", 'trusted-models' = '" + trust + "'";
    StreamTableEnvironment refused = env(rows, Fixtures.model("s1"), option);
    Exception e = assertThrows(Exception.class, () -> predict(refused, ""));
    assertTrue(ExceptionUtils.findThrowableWithMessage(e,
        "is not in the trust file '" + trust + "' (1 digest(s))").isPresent(), ExceptionUtils.stringifyException(e));
    Map<Integer, Double> got = predict(env(rows, Fixtures.model("lgbm"), option), "");
    for (FixtureRow r : rows) {
      assertEquals(r.lgbm(), got.get(r.id()), "id " + r.id());
    }
  }
}
