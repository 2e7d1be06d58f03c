package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The DataStream batching operator under a failure: a task fails mid-job after a checkpoint, the
 * job restarts from it, and an exactly-once sink holds every row's score exactly once.
 */
class FailoverTest {
  @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = FlinkTestSupport.miniCluster();

  static final int ROWS = 3000;
  static final int FAIL_AT = 2000;
  static final AtomicBoolean FAILED = new AtomicBoolean();
  /** A checkpoint with rows in the buffer has completed: time to fail. */
  static final AtomicBoolean READY = new AtomicBoolean();
  /** Committed sink output by checkpoint id (each checkpoint's rows published once). */
  static final Map<Long, List<Row>> COMMITTED = new ConcurrentHashMap<>();

  /** Deterministic features of row {@code id}. */
  static Row features(long id) {
    Row row = new Row(33);
    row.setField(0, id);
    java.util.SplittableRandom rng = new java.util.SplittableRandom(id);
    for (int i = 0; i < 32; i++) {
      row.setField(i + 1, rng.nextDouble() * 4 - 2);
    }
    return row;
  }

  static RowTypeInfo inputType() {
    TypeInformation<?>[] types = new TypeInformation<?>[33];
    String[] names = new String[33];
    types[0] = Types.LONG;
    names[0] = "id";
    for (int i = 0; i < 32; i++) {
      types[i + 1] = Types.DOUBLE;
      names[i + 1] = "x" + i;
    }
    return new RowTypeInfo(types, names);
  }

  /**
   * Builds rows from ids, slowly enough (1 ms per 10 rows) for checkpoints to be taken with rows
   * in flight; fails once, at the first row from {@link #FAIL_AT} on after a checkpoint that was
   * taken with rows in the batch buffer has completed (the buffer holds every row until it has
   * {@code max_batch_rows} of them, so a checkpoint after the first row has some).
   */
  static final class FailOnce implements MapFunction<Long, Row>, CheckpointListener, CheckpointedFunction {
    private transient long processed;
    private transient Map<Long, Long> processedAt;

    @Override
    public Row map(Long id) throws Exception {
      processed++;
      if (id % 10 == 0) {
        Thread.sleep(1);
      }
      if (id >= FAIL_AT && !READY.get()) {
        Thread.sleep(5); // a slow machine: give the checkpoints time
      }
      if (id >= FAIL_AT && READY.get() && FAILED.compareAndSet(false, true)) {
        throw new RuntimeException("injected failure at row " + id);
      }
      return features(id);
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) {
      processedAt.put(context.getCheckpointId(), processed);
    }

    @Override
    public void initializeState(FunctionInitializationContext context) {
      processedAt = new HashMap<>();
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
      if (processedAt.getOrDefault(checkpointId, 0L) > 0) {
        READY.set(true);
      }
    }
  }

  /**
   * A two-phase sink for the test: rows are staged per checkpoint in state and published to {@link
   * #COMMITTED} when that checkpoint completes (or, after a restore, for the restored checkpoint),
   * keyed by checkpoint id so a replayed commit does not publish twice.
   */
  static final class CommittingSink extends AbstractStreamOperator<Void>
      implements OneInputStreamOperator<Row, Void> {
    private final RowTypeInfo type;
    private transient List<Row> current;
    /** Rows of checkpoints not yet known to be complete, by checkpoint id. */
    private transient Map<Long, List<Row>> staged;
    private transient ListState<Tuple2<Long, Row>> stagedState;

    CommittingSink(RowTypeInfo type) {
      this.type = type;
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
      super.initializeState(context);
      stagedState = context.getOperatorStateStore().getListState(
          new ListStateDescriptor<>("staged", Types.TUPLE(Types.LONG, type)));
      current = new ArrayList<>();
      staged = new HashMap<>();
      // What the restored checkpoint staged belongs to completed checkpoints: commit it (once).
      Map<Long, List<Row>> restored = new HashMap<>();
      for (Tuple2<Long, Row> t : stagedState.get()) {
        restored.computeIfAbsent(t.f0, k -> new ArrayList<>()).add(t.f1);
      }
      restored.forEach(COMMITTED::putIfAbsent);
    }

    @Override
    public void processElement(StreamRecord<Row> element) {
      current.add(element.getValue());
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
      super.snapshotState(context);
      staged.put(context.getCheckpointId(), current);
      current = new ArrayList<>();
      List<Tuple2<Long, Row>> all = new ArrayList<>();
      staged.forEach((id, rows) -> rows.forEach(r -> all.add(Tuple2.of(id, r))));
      stagedState.update(all);
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) throws Exception {
      super.notifyCheckpointComplete(checkpointId);
      staged.entrySet().removeIf(e -> {
        if (e.getKey() <= checkpointId) {
          COMMITTED.putIfAbsent(e.getKey(), e.getValue());
          return true;
        }
        return false;
      });
    }
  }

  @BeforeEach
  void reset() {
    FAILED.set(false);
    READY.set(false);
    COMMITTED.clear();
  }

  @Test
  void aFailureMidJobRestartsFromTheCheckpointAndEveryRowIsScoredExactlyOnce() throws Exception {
    long restored = runWithAFailure(
        new BatchPolicy(2500, Duration.ofSeconds(30)), BatchingPredictOperator::new, ROWS / 20);
    // The restored checkpoint held rows waiting in the batch buffer; they were scored after it.
    assertTrue(restored > 0, "rows restored into the batch buffer: " + restored);
  }

  /**
   * Small batches and a scorer slower than the source (10 ms a batch of 50): checkpoints come while
   * batches are in flight on the scoring thread; each barrier waits until they are emitted, so the
   * restore neither loses nor repeats a row.
   */
  @Test
  void checkpointsWithBatchesInFlightLoseAndRepeatNoRowAcrossAFailure() throws Exception {
    ScoringThreadTest.SlowScoring.reset(10);
    // 60 batches of 50, and those replayed after the restore: far fewer calls than rows.
    runWithAFailure(new BatchPolicy(50, Duration.ofSeconds(30)), ScoringThreadTest.SlowScoring::new, ROWS / 10);
    assertTrue(ScoringThreadTest.SlowScoring.CHECKPOINTS_WITH_BATCHES_IN_FLIGHT.get() > 0,
        "checkpoints taken with batches in flight: "
            + ScoringThreadTest.SlowScoring.CHECKPOINTS_WITH_BATCHES_IN_FLIGHT.get());
  }

  /**
   * Run the job (a failure injected once), check that the sink committed every row exactly once
   * with the binary's score and that fewer than {@code maxCalls} native calls were made; return the
   * rows restored into batch buffers.
   */
  private static long runWithAFailure(BatchPolicy policy, StreammlStreams.OperatorMaker maker, long maxCalls)
      throws Exception {
    String model = Fixtures.built("s1_logistic");
    Configuration config = new Configuration();
    config.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
    config.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
    config.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(config);
    env.setParallelism(1);
    env.enableCheckpointing(50);
    long restoredBefore = BatchingPredictOperator.restoredRows();
    long callsBefore = NativeModel.totalPredictCalls();

    RowTypeInfo inType = inputType();
    DataStream<Row> rows = env.fromSequence(0, ROWS - 1).map(new FailOnce()).returns(inType);
    DataStream<Row> scored = StreammlStreams.predict("score", rows, model, policy, maker);
    RowTypeInfo outType = (RowTypeInfo) scored.getType();
    scored.transform("sink", Types.VOID, new CommittingSink(outType)).setParallelism(1);
    env.execute("streamml failover");

    assertTrue(FAILED.get(), "the failure was injected");
    Map<Long, Double> byId = new HashMap<>();
    int total = 0;
    for (List<Row> committed : COMMITTED.values()) {
      for (Row r : committed) {
        total++;
        // id, x0..x31, then the model's outputs (probability, label), then error.
        assertEquals(36, r.getArity());
        assertNull(r.getField(35));
        assertNull(byId.put((Long) r.getField(0), (Double) r.getField(33)),
            "row " + r.getField(0) + " committed twice");
      }
    }
    assertEquals(ROWS, total);
    assertEquals(ROWS, byId.size());
    // Each score is the binary's own on that row.
    try (RowScorer scorer = RowScorer.open(model, "probability")) {
      for (long id = 0; id < ROWS; id += 97) {
        Row f = features(id);
        Object[] x = new Object[32];
        for (int i = 0; i < 32; i++) {
          x[i] = f.getField(i + 1);
        }
        assertEquals(scorer.score(List.<Object[]>of(x)).value(0), byId.get(id), "id " + id);
      }
    }
    // Batches (of up to 2500 or 50 rows), with a replay after the restore: far fewer calls than rows.
    long calls = NativeModel.totalPredictCalls() - callsBefore;
    assertTrue(calls < maxCalls, "native calls: " + calls);
    return BatchingPredictOperator.restoredRows() - restoredBefore;
  }
}
