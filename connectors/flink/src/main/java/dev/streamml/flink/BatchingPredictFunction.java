package dev.streamml.flink;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.table.functions.AsyncScalarFunction;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.util.TimeUtils;

/**
 * {@code streamml_predict_batched(model_path, x0, x1, ...)}: like {@link PredictFunction}, but the
 * concurrent calls Flink's async operator makes are gathered into micro-batches (flushed at
 * {@code max_batch_rows} rows or when the oldest row has waited {@code max_wait}) and each batch is
 * one native call. Flink keeps at most {@code table.exec.async-scalar.max-concurrent-operations}
 * calls in flight (default 10): set it to several batches, e.g. {@code 8 * max_batch_rows} (with
 * room for only one or two batches the task thread waits for each batch to be scored before it
 * reads more rows).
 *
 * <p>Also recommended: {@code table.exec.async-scalar.retry-strategy = NO_RETRY} (the default,
 * {@code FIXED_DELAY}, puts every row through Flink's retry path; scoring is deterministic, so a
 * retry only repeats the error) and {@code table.exec.async-scalar.timeout = 0 s} (a timeout sets
 * a timer per row; a row waits at most {@code max_wait} plus one native call here).
 *
 * <p>{@code model_path} may be a model reference, as for {@link PredictFunction}: a new version
 * takes over between batches, and a batch is scored wholly by one version.
 *
 * <p>The policy comes from the constructor or, for {@code CREATE FUNCTION}, from the job
 * parameters {@code streamml.max-batch-rows} and {@code streamml.max-wait} (a duration such as
 * {@code 10 ms}, as {@code ML_PREDICT}'s {@code 'max-wait'}), defaults {@link BatchPolicy#DEFAULT}
 * (1024 rows, 10 ms). A zero wait scores each row alone.
 */
public class BatchingPredictFunction extends AsyncScalarFunction {
  private static final long serialVersionUID = 1L;
  public static final String MAX_BATCH_ROWS = "streamml.max-batch-rows";
  public static final String MAX_WAIT = "streamml.max-wait";

  private final BatchPolicy configured;
  private transient BatchPolicy policy;
  private transient ModelSlotCache scorers;
  private transient Map<String, FutureBatcher<RowScorer, Double>> batchers;
  /** The last path looked up and its batcher: every call of a query names the same model. */
  private transient String lastPath;
  private transient FutureBatcher<RowScorer, Double> lastBatcher;

  public BatchingPredictFunction() {
    this(null);
  }

  public BatchingPredictFunction(BatchPolicy policy) {
    this.configured = policy;
  }

  @Override
  public void open(FunctionContext context) {
    BatchPolicy base = configured != null ? configured : BatchPolicy.DEFAULT;
    int rows = Integer.parseInt(
        context.getJobParameter(MAX_BATCH_ROWS, String.valueOf(base.maxBatchRows())));
    String wait = context.getJobParameter(MAX_WAIT, null);
    Duration maxWait = wait == null ? base.maxWait() : TimeUtils.parseDuration(wait);
    policy = configured != null ? configured : new BatchPolicy(rows, maxWait);
    scorers = new ModelSlotCache(context);
    batchers = new HashMap<>();
  }

  public void eval(CompletableFuture<Double> result, String modelPath, Double... features) {
    FutureBatcher<RowScorer, Double> batcher;
    try {
      batcher = batcher(modelPath);
    } catch (RuntimeException e) {
      result.completeExceptionally(e);
      return;
    }
    batcher.add(features, result);
  }

  /** No lock: Flink calls {@code eval} (and {@code open}, {@code close}) from the task thread only. */
  private FutureBatcher<RowScorer, Double> batcher(String modelPath) {
    if (modelPath != null && modelPath.equals(lastPath)) {
      return lastBatcher;
    }
    FutureBatcher<RowScorer, Double> batcher = batchers.get(modelPath);
    if (batcher == null) {
      batcher = new FutureBatcher<>(scorers.get(modelPath), scorer -> scorer, policy,
          (outputs, version) -> outputs == null ? null : PredictFunction.toDouble(outputs[0]));
      batchers.put(modelPath, batcher);
    }
    lastPath = modelPath;
    lastBatcher = batcher;
    return batcher;
  }

  @Override
  public void close() {
    if (batchers != null) {
      batchers.values().forEach(FutureBatcher::close);
      batchers.clear();
      lastPath = null;
      lastBatcher = null;
    }
    if (scorers != null) {
      scorers.close();
    }
  }
}
