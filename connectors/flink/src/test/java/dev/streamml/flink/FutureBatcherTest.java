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
      List<CompletableFuture<Double>> futures = new ArrayList<>();
      try (ModelSlot<Void> slot = fixedSlot(model);
          FutureBatcher<Void, Double> batcher = new FutureBatcher<>(slot, (none, batch) -> scorer.score(batch),
          new BatchPolicy(10, Duration.ofSeconds(60)), (outputs, version) -> (Double) outputs[0])) {
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
        assertTrue(f.isDone(), "row " + id);
        if (id >= 20 && id < 30) {
          ExecutionException e = assertThrows(ExecutionException.class, f::get, "row " + id);
          assertSame(ModelException.class, e.getCause().getClass());
          assertEquals(expected, e.getCause().getMessage(), "row " + id);
        } else {
          assertEquals(id < 20 ? 25.0 - id : (double) id, f.get(), "row " + id);
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
}
