package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;

/**
 * The batcher behind {@code streamml_predict_batched} and async {@code ML_PREDICT}: futures are
 * completed off the caller's thread with the binary's scores, a scoring error completes every row
 * of its batch exceptionally with the error, at most {@link FutureBatcher#MAX_IN_FLIGHT} batches
 * are in flight, and {@code close()} with batches in flight completes them and returns.
 */
class FutureBatcherTest {
  static Object[] features(long id) {
    var f = FailoverTest.features(id);
    Object[] x = new Object[32];
    for (int i = 0; i < 32; i++) {
      x[i] = f.getField(i + 1);
    }
    return x;
  }

  /** A slot that serves a binary's path as is; the tests score with a scorer of their own. */
  private static ModelSlot<Void> fixedSlot(String path) {
    return new ModelSlot<>(ModelSlot.Config.of(path), null);
  }

  @Test
  void futuresAreCompletedOffTheCallersThreadWithTheBinarysScores() throws Exception {
    Set<String> threads = ConcurrentHashMap.newKeySet();
    List<Object[]> rows = new ArrayList<>();
    List<CompletableFuture<Double>> futures = new ArrayList<>();
    long before = NativeModel.totalPredictCalls();
    try (RowScorer scorer = RowScorer.open(Fixtures.built("s1_logistic"), "probability")) {
      try (ModelSlot<Void> slot = fixedSlot(Fixtures.built("s1_logistic"));
          FutureBatcher<Void, Double> batcher = new FutureBatcher<>(slot, (none, batch) -> scorer.score(batch),
          new BatchPolicy(64, Duration.ofSeconds(60)), (outputs, version) -> {
            threads.add(Thread.currentThread().getName());
            return (Double) outputs[0];
          })) {
        for (long id = 0; id < 1000; id++) {
          rows.add(features(id));
          CompletableFuture<Double> f = new CompletableFuture<>();
          futures.add(f);
          batcher.add(rows.get((int) id), f);
        }
      } // close(): the last 40 rows, then every batch completed
      // 15 full batches of 64 and the 40 rows close() flushed.
      assertEquals(16, NativeModel.totalPredictCalls() - before);
      RowScorer.Result want = scorer.score(rows);
      for (int i = 0; i < rows.size(); i++) {
        assertTrue(futures.get(i).isDone(), "row " + i + " completed by close()");
        assertEquals(want.value(i), futures.get(i).get(), "row " + i);
      }
    }
    assertEquals(Set.of("streamml-batch-completer"), threads);
  }

  @Test
  void aScoringErrorCompletesEveryRowOfItsBatchWithTheErrorAndOnlyThose() throws Exception {
    String model = Fixtures.built("panicking");
    try (RowScorer scorer = RowScorer.open(model, null)) {
      // Batches of 10 rows, x = 25 - id: the third batch (ids 20..29) has negative x.
      List<Object[]> third = new ArrayList<>();
      for (long id = 20; id < 30; id++) {
        third.add(new Object[] {25.0 - id});
      }
      String expected = assertThrows(ModelException.class, () -> scorer.score(third)).getMessage();
      assertTrue(expected.contains("panicked: negative x"), expected);
      BatchPolicy policy = new BatchPolicy(10, Duration.ofSeconds(60));
      BiFunction<Object[], ModelSlot.Version<Void>, Double> first = (outputs, version) -> (Double) outputs[0];
      // Scored from its rows (a scoring function), and packed into a double[] (a RowScorer: all Doubles).
      for (boolean packed : new boolean[] {false, true}) {
        String path = packed ? "packed, " : "rows, ";
        List<CompletableFuture<Double>> futures = new ArrayList<>();
        try (ModelSlot<Void> slot = fixedSlot(model);
            FutureBatcher<Void, Double> batcher = packed
                ? new FutureBatcher<>(slot, none -> scorer, policy, first)
                : new FutureBatcher<>(slot, (none, batch) -> scorer.score(batch), policy, first)) {
          for (long id = 0; id < 20; id++) {
            CompletableFuture<Double> f = new CompletableFuture<>();
            futures.add(f);
            batcher.add(new Object[] {25.0 - id}, f);
          }
          for (long id = 20; id < 40; id++) {
            CompletableFuture<Double> f = new CompletableFuture<>();
            futures.add(f);
            batcher.add(id < 30 ? third.get((int) id - 20) : new Object[] {(double) id}, f);
          }
        }
        for (int id = 0; id < 40; id++) {
          CompletableFuture<Double> f = futures.get(id);
          assertTrue(f.isDone(), path + "row " + id);
          if (id >= 20 && id < 30) {
            ExecutionException e = assertThrows(ExecutionException.class, f::get, path + "row " + id);
            assertSame(ModelException.class, e.getCause().getClass());
            assertEquals(expected, e.getCause().getMessage(), path + "row " + id);
          } else {
            assertEquals(id < 20 ? 25.0 - id : (double) id, f.get(), path + "row " + id);
          }
        }
      }
    }
  }

  @Test
  void atMostMaxInFlightBatchesAreHandedOverAndTheCallerWaitsForRoom() throws Exception {
    CountDownLatch release = new CountDownLatch(1);
    AtomicInteger scored = new AtomicInteger();
    int batchRows = 5;
    try (RowScorer scorer = RowScorer.open(Fixtures.built("s1_logistic"), "probability");
        ModelSlot<Void> slot = fixedSlot(Fixtures.built("s1_logistic"))) {
      List<CompletableFuture<Double>> futures = new ArrayList<>();
      AtomicInteger added = new AtomicInteger();
      FutureBatcher<Void, Double> batcher = new FutureBatcher<>(slot, (none, batch) -> {
        try {
          release.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        scored.incrementAndGet();
        return scorer.score(batch);
      }, new BatchPolicy(batchRows, Duration.ofSeconds(60)), (outputs, version) -> (Double) outputs[0]);
      Thread caller = new Thread(() -> {
        for (long id = 0; id < 10 * batchRows; id++) {
          CompletableFuture<Double> f = new CompletableFuture<>();
          synchronized (futures) {
            futures.add(f);
          }
          batcher.add(features(id), f);
          added.incrementAndGet();
        }
      }, "test-caller");
      caller.start();
      // The worker holds the first batch; three more wait for it; the fifth hand-over waits for room.
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (caller.getState() != Thread.State.WAITING && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      Thread.sleep(100);
      assertEquals(Thread.State.WAITING, caller.getState());
      assertEquals(FutureBatcher.MAX_IN_FLIGHT * batchRows + batchRows - 1, added.get(), "rows added");
      assertEquals(0, scored.get());
      release.countDown();
      caller.join(TimeUnit.SECONDS.toMillis(30));
      assertFalse(caller.isAlive());
      batcher.close();
      assertEquals(10, scored.get());
      for (int i = 0; i < futures.size(); i++) {
        assertTrue(futures.get(i).isDone(), "row " + i);
        assertEquals(scorer.score(List.<Object[]>of(features(i))).value(0), futures.get(i).get(), "row " + i);
      }
    }
  }

  @Test
  void closeWithBatchesInFlightCompletesThemAndReturns() throws Exception {
    try (RowScorer scorer = RowScorer.open(Fixtures.built("s1_logistic"), "probability");
        ModelSlot<Void> slot = fixedSlot(Fixtures.built("s1_logistic"))) {
      List<CompletableFuture<Double>> futures = new ArrayList<>();
      FutureBatcher<Void, Double> batcher = new FutureBatcher<>(slot, (none, batch) -> {
        try {
          Thread.sleep(50);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        return scorer.score(batch);
      }, new BatchPolicy(10, Duration.ofSeconds(60)), (outputs, version) -> (Double) outputs[0]);
      for (long id = 0; id < 45; id++) {
        CompletableFuture<Double> f = new CompletableFuture<>();
        futures.add(f);
        batcher.add(features(id), f);
      }
      long start = System.nanoTime();
      batcher.close(); // 4 batches in flight, 5 rows waiting: flushed, all 5 scored, then closed
      long took = System.nanoTime() - start;
      assertTrue(took < TimeUnit.SECONDS.toNanos(10), "close() took " + took / 1_000_000 + " ms");
      for (int i = 0; i < futures.size(); i++) {
        assertTrue(futures.get(i).isDone(), "row " + i);
        assertEquals(scorer.score(List.<Object[]>of(features(i))).value(0), futures.get(i).get(), "row " + i);
      }
    }
  }

  @Test
  void batchesOfDoublesArePackedAndScoreAsTheirRowsAndOtherRowsFallBackToTheirBatch() throws Exception {
    // 64-row batches: batch 0 all Doubles (packed), batch 1 has a Long (its rows as given), batch 2
    // a row of 31 values and batch 3 a null row (refused by the core, the rest scored), the last
    // 40 rows all Doubles again (packed, flushed by close()).
    String model = Fixtures.built("s1_logistic");
    List<Object[]> rows = new ArrayList<>();
    for (long id = 0; id < 296; id++) {
      rows.add(features(id));
    }
    rows.get(64 + 5)[3] = 7L;
    rows.set(128 + 9, java.util.Arrays.copyOf(rows.get(128 + 9), 31));
    rows.set(192 + 1, null);
    List<CompletableFuture<Object[]>> futures = new ArrayList<>();
    long before = NativeModel.totalPredictCalls();
    try (RowScorer scorer = RowScorer.open(model, "probability");
        ModelSlot<Void> slot = fixedSlot(model)) {
      try (FutureBatcher<Void, Object[]> batcher = new FutureBatcher<>(slot, none -> scorer,
          new BatchPolicy(64, Duration.ofSeconds(60)), (outputs, version) -> outputs)) {
        for (Object[] row : rows) {
          CompletableFuture<Object[]> f = new CompletableFuture<>();
          futures.add(f);
          batcher.add(row, f);
        }
      }
      assertEquals(5, NativeModel.totalPredictCalls() - before);
      for (int b = 0; b * 64 < rows.size(); b++) {
        List<Object[]> batch = rows.subList(b * 64, Math.min(rows.size(), b * 64 + 64));
        RowScorer.Result want = scorer.score(batch);
        for (int i = 0; i < batch.size(); i++) {
          Object[] got = futures.get(b * 64 + i).get();
          if (want.outputs(i) == null) {
            assertEquals(null, got, "row " + (b * 64 + i) + ": " + want.error(i));
          } else {
            assertEquals(java.util.Arrays.asList(want.outputs(i)), java.util.Arrays.asList(got), "row " + (b * 64 + i));
          }
        }
      }
    }
    assertEquals(null, futures.get(192 + 1).get());
    assertEquals(null, futures.get(128 + 9).get());
  }

  @Test
  void rowsBelowAFullBatchAreScoredByTheTimerAndItIsSetAgainForLaterRows() throws Exception {
    String model = Fixtures.built("s1_logistic");
    try (RowScorer scorer = RowScorer.open(model, "probability");
        ModelSlot<Void> slot = fixedSlot(model);
        FutureBatcher<Void, Double> batcher = new FutureBatcher<>(slot, none -> scorer,
            new BatchPolicy(1000, Duration.ofMillis(30)), (outputs, version) -> (Double) outputs[0])) {
      List<Object> want = new ArrayList<>();
      for (long id = 0; id < 3; id++) {
        want.add(scorer.score(List.<Object[]>of(features(id))).value(0));
      }
      long before = NativeModel.totalPredictCalls();
      for (int round = 0; round < 3; round++) {
        List<CompletableFuture<Double>> futures = new ArrayList<>();
        long start = System.nanoTime();
        for (long id = 0; id < 3; id++) {
          CompletableFuture<Double> f = new CompletableFuture<>();
          futures.add(f);
          batcher.add(features(id), f);
        }
        for (int i = 0; i < 3; i++) {
          assertEquals(want.get(i), futures.get(i).get(10, TimeUnit.SECONDS), "round " + round + " row " + i);
        }
        long took = System.nanoTime() - start;
        assertTrue(took >= TimeUnit.MILLISECONDS.toNanos(30), "scored after " + took / 1000 + " us, before max_wait");
        assertEquals(round + 1, NativeModel.totalPredictCalls() - before, "one batch per round");
      }
    }
  }

  @Test
  void aTimerThatFindsItsBatchScoredIsSetAgainForTheRowsWaiting() throws Exception {
    String model = Fixtures.built("s1_logistic");
    try (RowScorer scorer = RowScorer.open(model, "probability");
        ModelSlot<Void> slot = fixedSlot(model);
        FutureBatcher<Void, Double> batcher = new FutureBatcher<>(slot, none -> scorer,
            new BatchPolicy(4, Duration.ofMillis(100)), (outputs, version) -> (Double) outputs[0])) {
      List<CompletableFuture<Double>> futures = new ArrayList<>();
      // Rows 0-3 fill a batch (scored at once); the timer set for row 0 fires while rows 4-5 are not
      // yet due, and must be set again for them: they are scored within max_wait, before close().
      for (long id = 0; id < 6; id++) {
        CompletableFuture<Double> f = new CompletableFuture<>();
        futures.add(f);
        batcher.add(features(id), f);
        if (id == 3) {
          Thread.sleep(60);
        }
      }
      for (int i = 0; i < 6; i++) {
        assertEquals(scorer.score(List.<Object[]>of(features(i))).value(0), futures.get(i).get(10, TimeUnit.SECONDS),
            "row " + i);
      }
    }
  }
}
