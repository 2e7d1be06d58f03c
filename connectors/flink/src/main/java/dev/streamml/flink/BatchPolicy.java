package dev.streamml.flink;

import java.io.Serializable;
import java.time.Duration;

/**
 * When a micro-batch is scored ({@link MicroBatcher}'s rule): as soon as it holds {@code
 * maxBatchRows} rows, or once its OLDEST row has waited {@code maxWait} (measured from that row's
 * arrival, not from the last arrival; zero: each row alone, as Flink hands rows over one by one),
 * or when the host asks (end of input, close).
 */
public record BatchPolicy(int maxBatchRows, Duration maxWait) implements Serializable {
  /** The defaults of every streamml host: 1024 rows or 10 ms (tests/fixtures/batching.json). */
  public static final BatchPolicy DEFAULT = new BatchPolicy(1024, Duration.ofMillis(10));

  public BatchPolicy {
    if (maxBatchRows < 1) {
      throw new IllegalArgumentException("max_batch_rows must be at least 1, got " + maxBatchRows);
    }
    if (maxWait == null) {
      throw new IllegalArgumentException("max_wait must be a java.time.Duration, got null");
    }
    if (maxWait.isNegative()) {
      throw new IllegalArgumentException("max_wait must not be negative, got " + maxWait);
    }
  }
}
