package dev.streamml.flink.bench;

import java.util.concurrent.CompletableFuture;
import org.apache.flink.table.functions.AsyncScalarFunction;

/**
 * The sum of its inputs as an {@link AsyncScalarFunction} that completes each call at once: what
 * Flink's async scalar path costs per row without a model (a future and a mailbox mail per row,
 * the ordered queue), the ceiling of any async function, streamml's batching one included.
 */
public class AsyncSum extends AsyncScalarFunction {
  private static final long serialVersionUID = 1L;

  public void eval(CompletableFuture<Double> result, Double... xs) {
    double sum = 0;
    for (Double x : xs) {
      sum += x;
    }
    result.complete(sum);
  }
}
