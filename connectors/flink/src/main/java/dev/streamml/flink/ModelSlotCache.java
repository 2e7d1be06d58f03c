package dev.streamml.flink;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.util.TimeUtils;

/**
 * The {@link ModelSlot}s one SQL function instance has opened, by model reference (usually one):
 * each reference is re-resolved every {@value #RELOAD_INTERVAL} (a job parameter; default 30 s for
 * a model directory, never for a binary's path, which is loaded once as before). Each slot's
 * counters go to the function's metric group under {@code model/<reference>}. Not thread-safe:
 * Flink calls a function's {@code open}, {@code eval} and {@code close} from its task thread only.
 */
final class ModelSlotCache implements AutoCloseable {
  /** The job parameter: how often SQL functions re-resolve their model references. */
  static final String RELOAD_INTERVAL = "streamml.reload-interval";

  private final Map<String, ModelSlot<RowScorer>> slots = new HashMap<>();
  private final Duration interval;
  private final MetricGroup metrics;
  /** The last reference looked up and its slot: every call of a query names the same model. */
  private String lastReference;
  private ModelSlot<RowScorer> last;

  ModelSlotCache(FunctionContext context) {
    String text = context == null ? null : context.getJobParameter(RELOAD_INTERVAL, null);
    this.interval = text == null ? null : TimeUtils.parseDuration(text);
    this.metrics = context == null ? null : context.getMetricGroup();
  }

  ModelSlot<RowScorer> get(String reference) {
    if (reference == null) {
      throw new ModelException("the model path argument is null");
    }
    if (reference.equals(lastReference)) {
      return last;
    }
    ModelSlot<RowScorer> slot = slots.get(reference);
    if (slot == null) {
      Duration every = interval != null ? interval
          : ModelReference.isDirectory(reference) ? ModelLifecycle.DEFAULT_RELOAD_INTERVAL : null;
      slot = new ModelSlot<>(new ModelSlot.Config(reference, null, null, every),
          (model, version) -> new RowScorer(model, null));
      if (metrics != null) {
        slot.registerMetrics(metrics.addGroup("model", reference));
      }
      slots.put(reference, slot);
    }
    lastReference = reference;
    last = slot;
    return slot;
  }

  @Override
  public void close() {
    lastReference = null;
    last = null;
    slots.values().forEach(ModelSlot::close);
    slots.clear();
  }
}
