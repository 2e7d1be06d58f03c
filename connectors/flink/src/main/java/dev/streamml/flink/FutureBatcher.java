package dev.streamml.flink;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Gathers concurrent calls into batches by the {@link BatchPolicy} rule and scores each batch in
 * one native call on a worker thread, completing each call's future with its row's outputs in
 * declared order (or null for a row that cannot be scored; or exceptionally when the native call
 * fails).
 */
final class FutureBatcher implements AutoCloseable {
  private final RowScorer scorer;
  private final BatchPolicy policy;
  private final ScheduledExecutorService timer;
  private final ExecutorService worker;
  private List<Object[]> rows = new ArrayList<>();
  private List<CompletableFuture<Object[]>> futures = new ArrayList<>();
  /** Counts batches started, so a timer set for an earlier batch does nothing. */
  private long generation;

  FutureBatcher(RowScorer scorer, BatchPolicy policy) {
    this.scorer = scorer;
    this.policy = policy;
    this.timer = Executors.newSingleThreadScheduledExecutor(daemon("streamml-batch-timer"));
    this.worker = Executors.newSingleThreadExecutor(daemon("streamml-batch-scorer"));
  }

  /** Queue a row; the future completes when its batch has been scored. */
  synchronized CompletableFuture<Object[]> add(Object[] row) {
    CompletableFuture<Object[]> future = new CompletableFuture<>();
    rows.add(row);
    futures.add(future);
    if (rows.size() >= policy.maxBatchRows()) {
      flush();
    } else if (rows.size() == 1) {
      long batch = generation;
      timer.schedule(() -> flushIfStill(batch), policy.maxWait().toNanos(), TimeUnit.NANOSECONDS);
    }
    return future;
  }

  private synchronized void flushIfStill(long batch) {
    if (generation == batch && !rows.isEmpty()) {
      flush();
    }
  }

  /** Hand the pending rows to the worker. */
  synchronized void flush() {
    if (rows.isEmpty()) {
      return;
    }
    List<Object[]> batchRows = rows;
    List<CompletableFuture<Object[]>> batchFutures = futures;
    rows = new ArrayList<>();
    futures = new ArrayList<>();
    generation++;
    worker.execute(() -> score(batchRows, batchFutures));
  }

  private void score(List<Object[]> batchRows, List<CompletableFuture<Object[]>> batchFutures) {
    try {
      RowScorer.Result result = scorer.score(batchRows);
      for (int i = 0; i < batchFutures.size(); i++) {
        batchFutures.get(i).complete(result.outputs(i));
      }
    } catch (RuntimeException e) {
      for (CompletableFuture<Object[]> f : batchFutures) {
        f.completeExceptionally(e);
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
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static java.util.concurrent.ThreadFactory daemon(String name) {
    return r -> {
      Thread t = new Thread(r, name);
      t.setDaemon(true);
      return t;
    };
  }
}
