package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.ExceptionUtils;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The DataStream operator's scoring thread: batches are scored off the task thread, at most {@link
 * BatchingPredictOperator#MAX_IN_FLIGHT} at a time, and emitted on the task thread in input order;
 * a scoring error fails the job with the error a synchronous call gives; cancelling a job with
 * batches in flight ends promptly and stops the thread.
 */
class ScoringThreadTest {
  @RegisterExtension static final MiniClusterExtension MINI_CLUSTER = FlinkTestSupport.miniCluster();

  static final String SCORER_THREAD = "streamml-datastream-scorer";

  /**
   * The operator with a slow scoring step ({@link #delayMs} before each batch is scored), which
   * records the most batches the task thread had in flight, the threads rows came in and were
   * scored on, and how long its {@code close()} took.
   */
  static class SlowScoring extends BatchingPredictOperator {
    static final AtomicInteger MOST_IN_FLIGHT = new AtomicInteger();
    static final Set<String> TASK_THREADS = ConcurrentHashMap.newKeySet();
    static final Set<String> SCORING_THREADS = ConcurrentHashMap.newKeySet();
    static final AtomicInteger BATCHES_STARTED = new AtomicInteger();
    static final AtomicInteger CHECKPOINTS_WITH_BATCHES_IN_FLIGHT = new AtomicInteger();
    static final AtomicLong CLOSE_NANOS = new AtomicLong(-1);
    static volatile CountDownLatch scoring = new CountDownLatch(1);
    static volatile long delayMs;

    SlowScoring(String modelPath, BatchPolicy policy, RowTypeInfo inputType, int[] features, int outputs) {
      super(modelPath, policy, inputType, features, outputs);
    }

    static void reset(long delay) {
      MOST_IN_FLIGHT.set(0);
      TASK_THREADS.clear();
      SCORING_THREADS.clear();
      BATCHES_STARTED.set(0);
      CHECKPOINTS_WITH_BATCHES_IN_FLIGHT.set(0);
      CLOSE_NANOS.set(-1);
      scoring = new CountDownLatch(1);
      delayMs = delay;
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
      TASK_THREADS.add(Thread.currentThread().getName());
      super.processElement(element);
      MOST_IN_FLIGHT.accumulateAndGet(inFlight(), Math::max);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
      if (inFlight() > 0) {
        CHECKPOINTS_WITH_BATCHES_IN_FLIGHT.incrementAndGet();
      }
      super.prepareSnapshotPreBarrier(checkpointId);
      assertEquals(0, inFlight(), "batches in flight at the barrier");
    }

    @Override
    Scored score(List<Row> batch) {
      SCORING_THREADS.add(Thread.currentThread().getName());
      BATCHES_STARTED.incrementAndGet();
      scoring.countDown();
      try {
        Thread.sleep(delayMs);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      return super.score(batch);
    }

    @Override
    public void close() throws Exception {
      long start = System.nanoTime();
      super.close();
      CLOSE_NANOS.set(System.nanoTime() - start);
    }
  }

  @BeforeEach
  void reset() {
    SlowScoring.reset(0);
  }

  @Test
  void batchesScoredOffTheTaskThreadTwoInFlightAreEmittedInInputOrder() throws Exception {
    SlowScoring.reset(3);
    String model = Fixtures.built("s1_logistic");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    int rows = 1000;
    DataStream<Row> in = env.fromSequence(0, rows - 1).map(FailoverTest::features).returns(FailoverTest.inputType());
    long before = NativeModel.totalPredictCalls();
    List<Row> out = new ArrayList<>();
    try (CloseableIterator<Row> it = StreammlStreams.predict("score", in, model,
        new BatchPolicy(10, Duration.ofSeconds(60)), SlowScoring::new).executeAndCollect()) {
      it.forEachRemaining(out::add);
    }
    assertEquals(rows, out.size());
    // 100 batches of 10, one native call each.
    assertEquals(100, NativeModel.totalPredictCalls() - before, "native calls");
    List<Object[]> features = new ArrayList<>();
    for (int id = 0; id < rows; id++) {
      Row r = out.get(id);
      assertEquals((long) id, r.getField(0), "row " + id + " in order");
      assertNull(r.getField(35));
      Object[] x = new Object[32];
      for (int i = 0; i < 32; i++) {
        x[i] = r.getField(i + 1);
      }
      features.add(x);
    }
    try (RowScorer scorer = RowScorer.open(model, "probability")) {
      RowScorer.Result want = scorer.score(features);
      for (int id = 0; id < rows; id++) {
        assertEquals(want.value(id), out.get(id).getField(33), "id " + id);
      }
    }
    // The scorer (3 ms a batch) is slower than the source, so the task thread had the most
    // batches allowed in flight, and never more.
    assertEquals(100, SlowScoring.BATCHES_STARTED.get());
    assertEquals(BatchingPredictOperator.MAX_IN_FLIGHT, SlowScoring.MOST_IN_FLIGHT.get(), "most batches in flight");
    assertEquals(Set.of(SCORER_THREAD), SlowScoring.SCORING_THREADS);
    assertFalse(SlowScoring.TASK_THREADS.contains(SCORER_THREAD), SlowScoring.TASK_THREADS.toString());
  }

  /** id BIGINT and x DOUBLE (the panicking model's one input). */
  static RowTypeInfo xType() {
    return new RowTypeInfo(new TypeInformation<?>[] {Types.LONG, Types.DOUBLE}, new String[] {"id", "x"});
  }

  @Test
  void anErrorOnTheScoringThreadFailsTheJobWithTheMessageOfASynchronousCall() throws Exception {
    String model = Fixtures.built("panicking");
    // Rows 0..999, x = 450 - id: the batch of rows 400..499 (the fifth of 100) has negative x.
    String expected;
    try (RowScorer scorer = RowScorer.open(model, null)) {
      List<Object[]> batch = new ArrayList<>();
      for (long id = 400; id < 500; id++) {
        batch.add(new Object[] {450.0 - id});
      }
      expected = assertThrows(ModelException.class, () -> scorer.score(batch)).getMessage();
    }
    assertTrue(expected.contains("panicked: negative x"), expected);
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    DataStream<Row> in = env.fromSequence(0, 999).map(id -> Row.of(id, 450.0 - id)).returns(xType());
    List<Row> out = new ArrayList<>();
    Exception e = assertThrows(Exception.class, () -> {
      try (CloseableIterator<Row> it = StreammlStreams.predict("score", in, model,
          new BatchPolicy(100, Duration.ofSeconds(60)), SlowScoring::new).executeAndCollect()) {
        it.forEachRemaining(out::add);
      }
    });
    assertTrue(ExceptionUtils.findThrowable(e, t -> expected.equals(t.getMessage())).isPresent(),
        ExceptionUtils.stringifyException(e));
    // No row of the failed batch or after it came out.
    for (Row r : out) {
      assertTrue((Long) r.getField(0) < 400, "row " + r.getField(0) + " emitted");
    }
  }

  @Test
  void cancellingAJobWithBatchesInFlightEndsPromptlyAndStopsTheScoringThread() throws Exception {
    SlowScoring.reset(300);
    String model = Fixtures.built("s1_logistic");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    DataStream<Row> in = env.fromSequence(0, Long.MAX_VALUE - 1).map(FailoverTest::features)
        .returns(FailoverTest.inputType());
    StreammlStreams.predict("score", in, model, new BatchPolicy(10, Duration.ofSeconds(60)), SlowScoring::new)
        .sinkTo(new DiscardingSink<>());
    JobClient job = env.executeAsync("streamml cancel with batches in flight");
    assertTrue(SlowScoring.scoring.await(60, TimeUnit.SECONDS), "a batch is being scored");
    // Wait until the task thread has its batches in flight (the scorer takes 300 ms a batch).
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (SlowScoring.MOST_IN_FLIGHT.get() < BatchingPredictOperator.MAX_IN_FLIGHT && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertEquals(BatchingPredictOperator.MAX_IN_FLIGHT, SlowScoring.MOST_IN_FLIGHT.get());
    long start = System.nanoTime();
    job.cancel().get(30, TimeUnit.SECONDS);
    while (job.getJobStatus().get(30, TimeUnit.SECONDS) != JobStatus.CANCELED) {
      assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(30), "job cancelled within 30 s");
      Thread.sleep(10);
    }
    long closeNanos = SlowScoring.CLOSE_NANOS.get();
    assertTrue(closeNanos >= 0, "the operator was closed");
    // close() waits for the batch being scored (at most its 300 ms) and drops the queued one.
    assertTrue(closeNanos < TimeUnit.SECONDS.toNanos(5), "close() took " + closeNanos / 1_000_000 + " ms");
    // The thread ends right after close() has seen its last task done.
    deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    while (scorerThreadAlive() && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertFalse(scorerThreadAlive(), "the scoring thread still runs");
  }

  private static boolean scorerThreadAlive() {
    return Thread.getAllStackTraces().keySet().stream()
        .anyMatch(t -> t.getName().equals(SCORER_THREAD) && t.isAlive());
  }
}
