package dev.streamml.flink;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;
import java.util.function.Function;

/**
 * Gathers concurrent calls into batches by the {@link MicroBatcher} rule and scores each batch in
 * one native call on a worker thread, completing each call's future with {@code result} applied to
 * its row's outputs in declared order (null for a row that cannot be scored), or exceptionally when
 * the native call fails. This class keeps the rows and owns the clock ({@link System#nanoTime}) and
 * the timer; the rule decides. The futures are completed, and {@code result} applied, on a second
 * thread, so the worker scores the next batch meanwhile; never on the caller's. At most {@link
 * #MAX_IN_FLIGHT} batches are handed over and not yet completed: a hand-over past that waits (the
 * caller's thread, or the timer's) until the oldest is completed.
 *
 * <p>The model comes from a {@link ModelSlot}, asked once per batch where the batch is scored: a
 * batch is scored wholly by one version, which {@code result} is given with each row's outputs; the
 * version is held from before the native call until the batch's futures are completed.
 *
 * @param <S> what the slot prepares per version
 * @param <T> what a row's future completes with
 */
final class FutureBatcher<S, T> implements AutoCloseable {
  /** Batches handed to the worker and not yet completed, at most. */
  static final int MAX_IN_FLIGHT = 4;

  private final ModelSlot<S> slot;
  private final BiFunction<S, List<Object[]>, RowScorer.Result> scoring;
  private final int maxRows;
  private final MicroBatcher rule;
  private final BiFunction<Object[], ModelSlot.Version<S>, T> result;
  private final ScheduledExecutorService timer;
  private final ExecutorService worker;
  private final ExecutorService completer;
  private final Semaphore room = new Semaphore(MAX_IN_FLIGHT);
  private List<Object[]> rows;
  private List<CompletableFuture<T>> futures;

  /** Score each batch with the {@link RowScorer} of the version the slot serves now. */
  FutureBatcher(ModelSlot<S> slot, Function<S, RowScorer> scorerOf, BatchPolicy policy,
      BiFunction<Object[], ModelSlot.Version<S>, T> result) {
    this(slot, (prepared, batch) -> scorerOf.apply(prepared).score(batch), policy, result);
  }

  /**
   * Score each batch with {@code scoring}, given the prepared object of the version the slot serves
   * now and the batch's rows (tests slow it down).
   */
  FutureBatcher(ModelSlot<S> slot, BiFunction<S, List<Object[]>, RowScorer.Result> scoring, BatchPolicy policy,
      BiFunction<Object[], ModelSlot.Version<S>, T> result) {
    this.slot = slot;
    this.scoring = scoring;
    this.maxRows = policy.maxBatchRows();
    this.rule = new MicroBatcher(policy);
    this.result = result;
    this.rows = new ArrayList<>(Math.min(maxRows, 4096));
    this.futures = new ArrayList<>(Math.min(maxRows, 4096));
    this.timer = Executors.newSingleThreadScheduledExecutor(daemon("streamml-batch-timer"));
    this.worker = Executors.newSingleThreadExecutor(daemon("streamml-batch-scorer"));
    this.completer = Executors.newSingleThreadExecutor(daemon("streamml-batch-completer"));
  }

  /** Queue a row; {@code future} completes when its batch has been scored. */
  synchronized void add(Object[] row, CompletableFuture<T> future) {
    rows.add(row);
    futures.add(future);
    long now = System.nanoTime();
    for (int n : rule.add(1, now)) {
      handOff(n);
    }
    if (rule.pending() == 1) {
      schedule(now); // this row started a batch
    }
  }

  /** A timer for the batch whose oldest row waits now. */
  private void schedule(long now) {
    timer.schedule(this::onTimer, rule.dueIn(now), TimeUnit.NANOSECONDS);
  }

  private synchronized void onTimer() {
    long now = System.nanoTime();
    int n = rule.poll(now);
    if (n > 0) {
      handOff(n);
    } // else a timer set for an earlier batch (scored when full): each batch sets its own
  }

  /** Score everything waiting now (close). */
  synchronized void flush() {
    int n = rule.flush();
    if (n > 0) {
      handOff(n);
    }
  }

  /**
   * Hand the oldest {@code n} rows waiting to the worker, once fewer than {@link #MAX_IN_FLIGHT}
   * batches are in flight.
   */
  private void handOff(int n) {
    List<Object[]> batchRows;
    List<CompletableFuture<T>> batchFutures;
    if (n == rows.size()) {
      batchRows = rows;
      batchFutures = futures;
      rows = new ArrayList<>(Math.min(maxRows, 4096));
      futures = new ArrayList<>(Math.min(maxRows, 4096));
    } else {
      batchRows = new ArrayList<>(rows.subList(0, n));
      batchFutures = new ArrayList<>(futures.subList(0, n));
      rows.subList(0, n).clear();
      futures.subList(0, n).clear();
    }
    try {
      room.acquire();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      ModelException stopped = new ModelException("interrupted while waiting to hand a batch over for scoring");
      for (CompletableFuture<T> f : batchFutures) {
        f.completeExceptionally(stopped);
      }
      return;
    }
    worker.execute(() -> scoreAndComplete(batchRows, batchFutures));
  }

  /** On the worker: score a batch, then have the completer complete its futures. */
  private void scoreAndComplete(List<Object[]> batchRows, List<CompletableFuture<T>> batchFutures) {
    RowScorer.Result scored;
    ModelSlot.Version<S> version = null;
    try {
      version = slot.acquire(); // once per batch; held until it is completed
      scored = scoring.apply(version.prepared(), batchRows);
    } catch (RuntimeException | Error e) {
      if (version != null) {
        version.close();
      }
      for (CompletableFuture<T> f : batchFutures) {
        f.completeExceptionally(e);
      }
      room.release();
      return;
    }
    ModelSlot.Version<S> held = version;
    completer.execute(() -> complete(scored, held, batchFutures));
  }

  private void complete(
      RowScorer.Result scored, ModelSlot.Version<S> version, List<CompletableFuture<T>> batchFutures) {
    try {
      for (int i = 0; i < batchFutures.size(); i++) {
        try {
          batchFutures.get(i).complete(result.apply(scored.outputs(i), version));
        } catch (RuntimeException e) {
          batchFutures.get(i).completeExceptionally(e);
        }
      }
    } finally {
      try {
        version.close();
      } finally {
        room.release();
      }
    }
  }

  @Override
  public void close() {
    flush();
    timer.shutdownNow();
    worker.shutdown();
    try {
      worker.awaitTermination(30, TimeUnit.SECONDS);
      completer.shutdown();
      completer.awaitTermination(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static ThreadFactory daemon(String name) {
    return r -> {
      Thread t = new Thread(r, name);
      t.setDaemon(true);
      return t;
    };
  }
}
