package dev.streamml.flink;

import java.util.ArrayList;
import java.util.List;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
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
 * <p>A batch whose rows all hold Doubles only, as many as the model has inputs, is copied into one
 * {@code double[]} as the rows arrive (on the caller's thread, where the values were just made) and
 * scored from it ({@link RowScorer#scoreDoubles}): the same checks and outcome as its boxed rows,
 * without the scoring thread reading 32 boxes a row. Any other batch is scored from its rows.
 * One timer is set at a time, for the oldest row waiting, not one per batch.
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
  /** The scorer of a version, for batches packed into a {@code double[]}; null: never packed. */
  private final Function<S, RowScorer> scorerOf;
  private final int maxRows;
  private final MicroBatcher rule;
  private final BiFunction<Object[], ModelSlot.Version<S>, T> result;
  private final ScheduledExecutorService timer;
  private final ExecutorService worker;
  private final ExecutorService completer;
  private final Semaphore room = new Semaphore(MAX_IN_FLIGHT);
  private List<Object[]> rows;
  private List<CompletableFuture<T>> futures;
  /** The waiting rows' values, row after row, while every one is all Doubles of {@link #width}. */
  private double[] packed;
  /** The values per row of the rows packed (that of the batch's first row); -1: not packing. */
  private int width;
  /** Arrays of scored batches, for the next batches to pack into. */
  private final ConcurrentLinkedQueue<double[]> spare = new ConcurrentLinkedQueue<>();
  /** Whether a timer is set (for the oldest row waiting, or earlier). */
  private boolean timerSet;

  /** Score each batch with the {@link RowScorer} of the version the slot serves now. */
  FutureBatcher(ModelSlot<S> slot, Function<S, RowScorer> scorerOf, BatchPolicy policy,
      BiFunction<Object[], ModelSlot.Version<S>, T> result) {
    this(slot, (prepared, batch) -> scorerOf.apply(prepared).score(batch), scorerOf, policy, result);
  }

  /**
   * Score each batch with {@code scoring}, given the prepared object of the version the slot serves
   * now and the batch's rows (tests slow it down).
   */
  FutureBatcher(ModelSlot<S> slot, BiFunction<S, List<Object[]>, RowScorer.Result> scoring, BatchPolicy policy,
      BiFunction<Object[], ModelSlot.Version<S>, T> result) {
    this(slot, scoring, null, policy, result);
  }

  private FutureBatcher(ModelSlot<S> slot, BiFunction<S, List<Object[]>, RowScorer.Result> scoring,
      Function<S, RowScorer> scorerOf, BatchPolicy policy, BiFunction<Object[], ModelSlot.Version<S>, T> result) {
    this.slot = slot;
    this.scoring = scoring;
    this.scorerOf = scorerOf;
    this.width = scorerOf == null ? -1 : 0;
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
    if (width >= 0) {
      pack(row, rows.size() - 1);
    }
    long now = System.nanoTime();
    for (int n : rule.add(1, now)) {
      handOff(n);
    }
    schedule(now);
  }

  /**
   * Copy {@code row}, the batch's row {@code index}, into {@link #packed} if it is all Doubles of
   * the batch's width; otherwise stop packing this batch.
   */
  private void pack(Object[] row, int index) {
    if (index == 0) {
      width = row == null ? 0 : row.length;
    }
    if (row == null || row.length != width || width == 0) {
      stopPacking();
      return;
    }
    int at = index * width;
    if (packed == null || packed.length < at + width) {
      packed = room(packed, Math.max(at + width, Math.min(maxRows, 1024) * width));
    }
    for (int i = 0; i < width; i++) {
      if (!(row[i] instanceof Double d)) {
        stopPacking();
        return;
      }
      packed[at + i] = d;
    }
  }

  /** An array of at least {@code length} holding {@code old}'s values: a spare one, or a new one. */
  private double[] room(double[] old, int length) {
    double[] a = spare.poll();
    if (a == null || a.length < length) {
      a = new double[Math.max(length, old == null ? 0 : Math.min(2 * old.length, maxRows * width))];
    }
    if (old != null) {
      System.arraycopy(old, 0, a, 0, old.length);
    }
    return a;
  }

  private void stopPacking() {
    width = -1;
    if (packed != null) {
      spare.offer(packed);
      packed = null;
    }
  }

  /** Set a timer for the oldest row waiting, unless one is set (it fires no later than that). */
  private void schedule(long now) {
    if (!timerSet && rule.pending() > 0) {
      timerSet = true;
      timer.schedule(this::onTimer, rule.dueIn(now), TimeUnit.NANOSECONDS);
    }
  }

  private synchronized void onTimer() {
    timerSet = false;
    long now = System.nanoTime();
    int n = rule.poll(now);
    if (n > 0) {
      handOff(n);
    } // else the rows it was set for were scored when full, and the rows waiting are not due yet
    schedule(now);
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
    double[] batchValues = null;
    int batchWidth = width;
    if (n == rows.size() && width > 0) {
      batchValues = packed;
      packed = null;
    } else {
      stopPacking(); // a batch split from the rows waiting: scored from its rows
    }
    width = scorerOf == null ? -1 : 0;
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
      width = -1; // the rows left are not packed: neither is the rest of their batch
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
    double[] values = batchValues;
    worker.execute(() -> scoreAndComplete(batchRows, values, batchWidth, batchFutures));
  }

  /**
   * On the worker: score a batch (from {@code values}, its rows' values packed {@code width} a row,
   * when given and the version's model takes that many inputs), then have the completer complete
   * its futures.
   */
  private void scoreAndComplete(
      List<Object[]> batchRows, double[] values, int width, List<CompletableFuture<T>> batchFutures) {
    RowScorer.Result scored;
    ModelSlot.Version<S> version = null;
    try {
      version = slot.acquire(); // once per batch; held until it is completed
      RowScorer scorer = values == null ? null : scorerOf.apply(version.prepared());
      scored = scorer != null && scorer.arity() == width
          ? scorer.scoreDoubles(values, batchRows.size())
          : scoring.apply(version.prepared(), batchRows);
    } catch (RuntimeException | Error e) {
      if (version != null) {
        version.close();
      }
      for (CompletableFuture<T> f : batchFutures) {
        f.completeExceptionally(e);
      }
      room.release();
      return;
    } finally {
      if (values != null && spare.size() < MAX_IN_FLIGHT) {
        spare.offer(values);
      }
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
