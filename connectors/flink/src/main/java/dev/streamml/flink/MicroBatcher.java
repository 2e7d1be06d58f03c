package dev.streamml.flink;

import java.util.Arrays;

/**
 * The micro-batching rule of every streamml host (Python's {@code streamml.batching.MicroBatcher}
 * is the same rule; one table of cases, {@code tests/fixtures/batching.json}, runs against both):
 * counts the rows a host holds for one batch and says how many of the oldest to score now. It holds
 * no rows and reads no clock; the host keeps the rows, passes the time in (nanoseconds, any
 * clock) and sets its own timers at {@link #deadline()}.
 *
 * <ul>
 *   <li>A batch is scored once it holds {@code maxBatchRows} rows, or once its oldest row has
 *       waited {@code maxWait}, measured from that row's arrival (not an inactivity timeout).
 *   <li>{@link #add} takes the rows a host hands over together (Flink hands over one row at a
 *       time): full batches are split off; then, if the oldest row waiting is due, everything
 *       waiting is scored, the rows that came with it included. A zero {@code maxWait} so scores
 *       what waits at the end of each hand-over: in Flink, each row alone.
 *   <li>{@link #poll} (a timer fired) and {@link #flush} (end of input, close, checkpoint) take
 *       what waits.
 * </ul>
 *
 * <p>Not thread-safe: a host calls it under its own lock or from one thread.
 */
public final class MicroBatcher {
  private static final int[] NONE = new int[0];

  private final int maxRows;
  private final long waitNanos;
  private int pending;
  private long first;

  /** Start empty. */
  public MicroBatcher(BatchPolicy policy) {
    this(policy, 0, 0);
  }

  /** Resume {@code pending} rows whose oldest arrived at {@code firstArrival} (ns). */
  public MicroBatcher(BatchPolicy policy, int pending, long firstArrival) {
    this.maxRows = policy.maxBatchRows();
    this.waitNanos = policy.maxWait().toNanos();
    this.pending = pending;
    this.first = firstArrival;
  }

  /** Rows waiting. */
  public int pending() {
    return pending;
  }

  /**
   * {@code rows} rows arrived together at {@code now}: the sizes of the batches to score now,
   * oldest first (an empty array, not a new one, when none is due).
   */
  public int[] add(int rows, long now) {
    if (rows <= 0) {
      return NONE;
    }
    if (pending == 0) {
      first = now;
    }
    int old = pending;
    pending += rows;
    int full = pending / maxRows;
    if (full > 0) {
      pending -= full * maxRows;
      if ((long) full * maxRows >= old) {
        first = now; // every row left came in this hand-over
      }
    }
    boolean due = pending > 0 && now - first >= waitNanos;
    if (full == 0 && !due) {
      return NONE;
    }
    int[] out = new int[full + (due ? 1 : 0)];
    Arrays.fill(out, 0, full, maxRows);
    if (due) {
      out[full] = pending;
      pending = 0;
    }
    return out;
  }

  /** Whether rows wait and the oldest has waited {@code maxWait} by {@code now}. */
  public boolean isDue(long now) {
    return pending > 0 && now - first >= waitNanos;
  }

  /** When the rows waiting are due (ns); meaningless when none wait. */
  public long deadline() {
    return first + waitNanos;
  }

  /** Nanoseconds from {@code now} until the rows waiting are due (0: due); -1 when none wait. */
  public long dueIn(long now) {
    return pending == 0 ? -1 : Math.max(0, first + waitNanos - now);
  }

  /** The rows to score now because the oldest is due (a timer fired); 0 when not due. */
  public int poll(long now) {
    return isDue(now) ? take() : 0;
  }

  /** All the rows waiting, to be scored now (end of input, close, checkpoint). */
  public int flush() {
    return take();
  }

  private int take() {
    int n = pending;
    pending = 0;
    return n;
  }
}
