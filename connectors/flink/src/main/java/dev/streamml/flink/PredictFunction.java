package dev.streamml.flink;

import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code streamml_predict(model_path, x0, x1, ...)}: scores one row per call on the core's one-row
 * path (one native call per row, no Arrow objects; see {@link RowScorer#scoreOne}) and returns the
 * model's first output as DOUBLE. Features are given in the model's declared
 * input order. A row that cannot be scored (a null for a non-nullable input, the wrong number of
 * features) gives NULL and a warning in the task log; a feature of a non-numeric SQL type is
 * refused when the query is planned. For throughput use {@link BatchingPredictFunction}.
 *
 * <p>{@code model_path} may be a model reference (a model directory or {@code DIR@ALIAS}, {@code
 * docs/lifecycle.md}): it is re-resolved every {@code streamml.reload-interval} (a job parameter,
 * default 30 s for a directory) and a new version takes over between rows. The version serving is
 * the gauge {@code model.<reference>.modelVersion} of the function's metric group, beside the
 * counters {@code modelSwaps}, {@code modelRefused} and {@code modelResolveErrors}.
 *
 * <pre>{@code
 * CREATE FUNCTION streamml_predict AS 'dev.streamml.flink.PredictFunction' USING JAR '...';
 * SELECT id, streamml_predict('/models/s1_logistic.so', x0, x1, ..., x31) FROM t;
 * }</pre>
 */
public class PredictFunction extends ScalarFunction {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(PredictFunction.class);

  private transient ModelSlotCache scorers;

  @Override
  public void open(FunctionContext context) {
    scorers = new ModelSlotCache(context);
  }

  public Double eval(String modelPath, Double... features) {
    if (scorers == null) {
      scorers = new ModelSlotCache(null);
    }
    RowScorer.Result result;
    try (ModelSlot.Version<RowScorer> version = scorers.get(modelPath).acquire()) { // a row is a batch
      result = version.prepared().scoreOne(features);
    }
    if (result.error(0) != null) {
      LOG.warn("streamml_predict: row not scored: {}", result.error(0));
      return null;
    }
    return toDouble(result.value(0));
  }

  static Double toDouble(Object value) {
    if (value == null) {
      return null;
    }
    if (value instanceof Boolean b) {
      return b ? 1.0 : 0.0;
    }
    return ((Number) value).doubleValue();
  }

  @Override
  public void close() {
    if (scorers != null) {
      scorers.close();
    }
  }
}
