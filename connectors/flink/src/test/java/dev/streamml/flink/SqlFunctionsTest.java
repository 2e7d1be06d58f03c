package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.streamml.flink.Fixtures.FixtureRow;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.ExceptionUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Flink SQL on a MiniCluster scoring a bounded table, compared with Python's Model.predict. */
class SqlFunctionsTest {
  @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = FlinkTestSupport.miniCluster();

  private static StreamTableEnvironment scoringEnv(List<FixtureRow> rows, int maxBatchRows) {
    StreamTableEnvironment tEnv = FlinkTestSupport.tableEnv();
    tEnv.createTemporaryView("t", FlinkTestSupport.fixtureTable(tEnv, rows));
    tEnv.createTemporarySystemFunction("streamml_predict", PredictFunction.class);
    tEnv.createTemporarySystemFunction("streamml_predict_batched",
        new BatchingPredictFunction(new BatchPolicy(maxBatchRows, Duration.ofMillis(200))));
    return tEnv;
  }

  private static Map<Integer, Double> scores(List<Row> rows) {
    Map<Integer, Double> out = new HashMap<>();
    for (Row r : rows) {
      assertNull(out.put((Integer) r.getField(0), (Double) r.getField(1)), "duplicate id " + r);
    }
    return out;
  }

  private static void assertBitsEqual(List<FixtureRow> rows, Map<Integer, Double> got, String model) {
    assertEquals(rows.size(), got.size());
    for (FixtureRow r : rows) {
      double expected = model.equals("s1") ? r.s1() : r.lgbm();
      Double actual = got.get(r.id());
      assertNotNull(actual, "no score for id " + r.id());
      assertEquals(Double.doubleToRawLongBits(expected), Double.doubleToRawLongBits(actual),
          model + " id " + r.id() + ": python " + expected + ", flink " + actual);
    }
  }

  @Test
  void perRowFunctionEqualsPythonBitForBit() throws Exception {
    List<FixtureRow> rows = Fixtures.rows();
    StreamTableEnvironment tEnv = scoringEnv(rows, 64);
    for (String model : List.of("s1", "lgbm")) {
      long before = NativeModel.totalPredictCalls();
      List<Row> out = FlinkTestSupport.collect(tEnv, "SELECT id, streamml_predict('"
          + Fixtures.model(model) + "', " + Fixtures.featureList() + ") FROM t");
      assertBitsEqual(rows, scores(out), model);
      // One native call per row: that is what the batching function is for.
      assertEquals(rows.size(), NativeModel.totalPredictCalls() - before);
    }
  }

  @Test
  void batchingFunctionEqualsPythonWithFarFewerNativeCalls() throws Exception {
    List<FixtureRow> rows = Fixtures.rows();
    StreamTableEnvironment tEnv = scoringEnv(rows, 64);
    for (String model : List.of("s1", "lgbm")) {
      long before = NativeModel.totalPredictCalls();
      List<Row> out = FlinkTestSupport.collect(tEnv, "SELECT id, streamml_predict_batched('"
          + Fixtures.model(model) + "', " + Fixtures.featureList() + ") FROM t");
      assertBitsEqual(rows, scores(out), model);
      long calls = NativeModel.totalPredictCalls() - before;
      // 500 rows in batches of at most 64: at least 8 calls; far fewer than one per row.
      assertTrue(calls >= (rows.size() + 63) / 64 && calls <= rows.size() / 10,
          "native calls for " + rows.size() + " rows: " + calls);
    }
  }

  @Test
  void nullFeaturesGiveANullScoreAndTheOtherRowsAreScored() throws Exception {
    List<FixtureRow> rows = Fixtures.rows().subList(0, 50);
    StreamTableEnvironment tEnv = scoringEnv(rows, 16);
    String path = Fixtures.model("s1");
    String features = Fixtures.featureList().replace("x7", "CASE WHEN MOD(id, 5) = 0 THEN NULL ELSE x7 END");
    for (String fn : List.of("streamml_predict", "streamml_predict_batched")) {
      Map<Integer, Double> got = scores(FlinkTestSupport.collect(tEnv,
          "SELECT id, " + fn + "('" + path + "', " + features + ") FROM t"));
      assertEquals(rows.size(), got.size());
      for (FixtureRow r : rows) {
        if (r.id() % 5 == 0) {
          assertNull(got.get(r.id()), fn + " id " + r.id());
        } else {
          assertEquals(Double.doubleToRawLongBits(r.s1()), Double.doubleToRawLongBits(got.get(r.id())),
              fn + " id " + r.id());
        }
      }
    }
  }

  @Test
  void aStringFeatureIsRefusedWhenTheQueryIsPlanned() {
    StreamTableEnvironment tEnv = scoringEnv(Fixtures.rows().subList(0, 5), 16);
    String features = Fixtures.featureList().replace("x3,", "'abc',");
    ValidationException e = assertThrows(ValidationException.class, () -> tEnv.executeSql(
        "SELECT id, streamml_predict('" + Fixtures.model("s1") + "', " + features + ") FROM t"));
    assertTrue(e.getMessage().contains("streamml_predict"), e.getMessage());
  }

  @Test
  void aMissingModelFailsTheJobWithTheFileNamed() {
    StreamTableEnvironment tEnv = scoringEnv(Fixtures.rows().subList(0, 5), 16);
    Exception e = assertThrows(Exception.class, () -> FlinkTestSupport.collect(tEnv,
        "SELECT id, streamml_predict('/nonexistent/model.so', " + Fixtures.featureList() + ") FROM t"));
    assertTrue(ExceptionUtils.findThrowableWithMessage(e, "cannot load model binary '/nonexistent/model.so'")
        .isPresent(), ExceptionUtils.stringifyException(e));
  }

  @Test
  void aPanickingModelFailsTheJobWithTheReasonAndTheJvmGoesOn() throws Exception {
    StreamTableEnvironment tEnv = scoringEnv(Fixtures.rows().subList(0, 5), 16);
    String path = Fixtures.built("panicking");
    Exception e = assertThrows(Exception.class, () -> FlinkTestSupport.collect(tEnv,
        "SELECT id, streamml_predict_batched('" + path + "', x0 - 100) FROM t"));
    assertTrue(ExceptionUtils.findThrowableWithMessage(e, "panicked: negative x").isPresent(),
        ExceptionUtils.stringifyException(e));
    // The same cluster, in the same JVM, scores the next query.
    List<Row> ok = FlinkTestSupport.collect(tEnv,
        "SELECT id, streamml_predict_batched('" + path + "', ABS(x0)) FROM t");
    assertEquals(5, ok.size());
  }
}
