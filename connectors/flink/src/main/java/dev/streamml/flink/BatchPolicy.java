package dev.streamml.flink;

import java.io.Serializable;
import java.time.Duration;

/**
 * When a micro-batch is flushed, by the design's rule: as soon as it holds {@code maxBatchRows}
 * rows, or once its OLDEST row has waited {@code maxWait} (measured from that row's arrival, not
 * from the last arrival), or when the host asks (end of input).
 */
public record BatchPolicy(int maxBatchRows, Duration maxWait) implements Serializable {
  /** 1024 rows or 10 ms. */
  public static final BatchPolicy DEFAULT = new BatchPolicy(1024, Duration.ofMillis(10));

  public BatchPolicy {
    if (maxBatchRows < 1) {
      throw new IllegalArgumentException("max_batch_rows must be at least 1, got " + maxBatchRows);
    }
    if (maxWait == null || maxWait.isNegative()) {
      throw new IllegalArgumentException("max_wait must be a non-negative duration, got " + maxWait);
    }
  }
}
