package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The DataStream operator scores each batch on a worker while the task thread gathers the next:
 * the outputs keep the input's order, each row's score is the binary's own, and the batches follow
 * the rule (full batches, the rest at the end of the input; a zero wait: each row alone).
 */
class StreammlStreamsTest {
  @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = FlinkTestSupport.miniCluster();

  static final int ROWS = 1000;

  @ParameterizedTest(name = "max_batch_rows {0}, max_wait {1} ms")
  @CsvSource({"64, 60000, 16", "1, 0, 1000", "10000, 0, 1000"})
  void outputsKeepTheInputOrderAndEqualTheBinarys(int maxRows, long waitMs, long calls) throws Exception {
    String model = Fixtures.built("s1_logistic");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    RowTypeInfo inType = FailoverTest.inputType();
    DataStream<Row> rows = env.fromSequence(0, ROWS - 1).map(FailoverTest::features).returns(inType);
    long before = NativeModel.totalPredictCalls();
    List<Row> out = new ArrayList<>();
    try (CloseableIterator<Row> it = StreammlStreams.predict(
        "score", rows, model, new BatchPolicy(maxRows, Duration.ofMillis(waitMs))).executeAndCollect()) {
      it.forEachRemaining(out::add);
    }
    assertEquals(ROWS, out.size());
    List<Object[]> features = new ArrayList<>();
    for (int id = 0; id < ROWS; id++) {
      Row r = out.get(id);
      assertEquals((long) id, r.getField(0), "row " + id + " in order");
      assertNull(r.getField(35));
      Object[] x = new Object[32];
      for (int i = 0; i < 32; i++) {
        x[i] = r.getField(i + 1);
      }
      features.add(x);
    }
    // 1000 rows in batches of 64: 15 full, the last 40 at the end of the input; a zero wait: 1000.
    assertEquals(calls, NativeModel.totalPredictCalls() - before, "native calls");
    try (RowScorer scorer = RowScorer.open(model, "probability")) {
      RowScorer.Result want = scorer.score(features);
      for (int id = 0; id < ROWS; id++) {
        assertEquals(want.value(id), out.get(id).getField(33), "id " + id);
      }
    }
    assertTrue(out.get(ROWS - 1).getField(34) instanceof Long, "the label output, int64");
  }
}
