package dev.streamml.flink;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import org.apache.flink.util.OutputTag;

/**
 * Scores a stream of rows in micro-batches (the {@link MicroBatcher} rule, on Flink's processing
 * time and timers) with one native call per batch. The rows waiting in the buffer are operator
 * state: a checkpoint stores them and a restore scores them at once, so a failover loses none and,
 * with an exactly-once sink, emits none twice.
 *
 * <p>A batch is scored on a worker thread (reading its rows, the native call, building the output
 * rows) while the task thread gathers the next; at most one batch is in flight, so outputs keep
 * the input's order. The task thread emits a scored batch before it hands over the next one, on a
 * timer once it is done, at the end of the input and before every checkpoint barrier, so a
 * checkpoint never holds a batch in flight.
 *
 * <p>Each output row is the input row's fields, then the model's outputs, then {@code error}:
 * null when the row was scored, otherwise why it was not (its outputs are then null). Build it with
 * {@link StreammlStreams#predict}.
 *
 * <p>With a model reference ({@link ModelLifecycle}) the model comes from a {@link ModelSlot},
 * asked once per batch on the worker: a batch is scored wholly by one version and each output row
 * ends with {@code model_version}. With challengers, every version scores every batch; only the
 * champion's rows go downstream, every version's rows (champion included) go to the side output.
 */
public class BatchingPredictOperator extends AbstractStreamOperator<Row>
    implements OneInputStreamOperator<Row, Row>, BoundedOneInput, ProcessingTimeCallback {
  private static final long serialVersionUID = 1L;
  private static final AtomicLong RESTORED_ROWS = new AtomicLong();

  private final ModelLifecycle lifecycle;
  private final BatchPolicy policy;
  private final RowTypeInfo inputType;
  private final int[] featureIndexes;
  private final int outputCount;
  /** The field holding the event id, for the canary; -1 without one. */
  private final int idIndex;

  private transient ModelLifecycle.Slots<RowScorer> slots;
  private transient List<Row> buffer;
  private transient ListState<Row> bufferState;
  private transient MicroBatcher rule;
  private transient ExecutorService worker;
  /** The batch being scored, or null. */
  private transient Future<Scored> inFlight;
  private transient StreamRecord<Row> reuse;

  BatchingPredictOperator(
      String modelPath, BatchPolicy policy, RowTypeInfo inputType, int[] featureIndexes, int outputCount) {
    this(ModelLifecycle.fixed(modelPath), policy, inputType, featureIndexes, outputCount, -1);
  }

  BatchingPredictOperator(
      ModelLifecycle lifecycle, BatchPolicy policy, RowTypeInfo inputType, int[] featureIndexes,
      int outputCount, int idIndex) {
    this.lifecycle = lifecycle;
    this.idIndex = idIndex;
    this.policy = policy;
    this.inputType = inputType;
    this.featureIndexes = featureIndexes;
    this.outputCount = outputCount;
  }

  /** Rows found in restored buffers, in this class loader (for tests and metrics). */
  public static long restoredRows() {
    return RESTORED_ROWS.get();
  }

  @Override
  public void initializeState(StateInitializationContext context) throws Exception {
    super.initializeState(context);
    bufferState = context.getOperatorStateStore()
        .getListState(new ListStateDescriptor<>("streamml-batch-buffer", inputType));
    buffer = new ArrayList<>();
    for (Row row : bufferState.get()) {
      buffer.add(row);
    }
    RESTORED_ROWS.addAndGet(buffer.size());
  }

  @Override
  public void open() throws Exception {
    super.open();
    slots = lifecycle.open((model, version) -> new RowScorer(model, null), getMetricGroup());
    reuse = new StreamRecord<>(null);
    worker = Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "streamml-datastream-scorer");
      t.setDaemon(true);
      return t;
    });
    long now = now();
    // Restored rows count as having waited max_wait: they are scored at once.
    rule = new MicroBatcher(policy, buffer.size(), now - policy.maxWait().toNanos());
    if (!buffer.isEmpty()) {
      getProcessingTimeService().registerTimer(now / 1_000_000, this);
    }
  }

  @Override
  public void processElement(StreamRecord<Row> element) throws Exception {
    buffer.add(element.getValue());
    long now = now();
    for (int n : rule.add(1, now)) {
      handOff(n);
    }
    if (rule.pending() == 1) { // this row started a batch: a timer for when it is due
      getProcessingTimeService().registerTimer(Math.floorDiv(rule.deadline() + 999_999, 1_000_000), this);
    }
  }

  @Override
  public void onProcessingTime(long time) throws Exception {
    if (inFlight != null) {
      if (inFlight.isDone()) {
        emitInFlight();
      } else {
        getProcessingTimeService().registerTimer(time + 1, this); // look again in a millisecond
      }
    }
    int n = rule.poll(now());
    if (n > 0) {
      handOff(n);
    } // else a timer set for an earlier batch (scored when full): each batch sets its own
  }

  @Override
  public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
    super.prepareSnapshotPreBarrier(checkpointId);
    emitInFlight();
  }

  @Override
  public void snapshotState(StateSnapshotContext context) throws Exception {
    super.snapshotState(context);
    bufferState.update(buffer);
  }

  @Override
  public void endInput() throws Exception {
    handOff(rule.flush());
    emitInFlight();
  }

  @Override
  public void close() throws Exception {
    if (worker != null) {
      worker.shutdownNow();
      worker.awaitTermination(30, TimeUnit.SECONDS);
    }
    if (slots != null) {
      slots.close();
    }
    super.close();
  }

  /** Hand the oldest {@code n} rows of the buffer to the worker, after emitting the batch in flight. */
  private void handOff(int n) throws Exception {
    if (n == 0) {
      return;
    }
    List<Row> batch;
    if (n == buffer.size()) {
      batch = buffer;
      buffer = new ArrayList<>(Math.min(policy.maxBatchRows(), 4096));
    } else {
      batch = new ArrayList<>(buffer.subList(0, n));
      buffer.subList(0, n).clear();
    }
    emitInFlight();
    inFlight = worker.submit(() -> score(batch));
    // So an idle stream still gets this batch's outputs: a timer looks for them.
    getProcessingTimeService().registerTimer(getProcessingTimeService().getCurrentProcessingTime() + 1, this);
  }

  /** Wait for the batch in flight, if any, and emit its rows (on the task thread). */
  private void emitInFlight() throws Exception {
    if (inFlight == null) {
      return;
    }
    Scored scored;
    try {
      scored = inFlight.get();
    } catch (ExecutionException e) {
      throw e.getCause() instanceof Exception cause ? cause : e;
    } finally {
      inFlight = null;
    }
    for (Row row : scored.rows()) {
      output.collect(reuse.replace(row));
    }
    if (scored.shadow() != null) {
      OutputTag<Row> tag = lifecycle.shadowTag();
      for (Row row : scored.shadow()) {
        output.collect(tag, new StreamRecord<>(row));
      }
    }
  }

  /** A scored batch: the rows for downstream, and every version's rows for the side output. */
  private record Scored(List<Row> rows, List<Row> shadow) {}

  /**
   * Score {@code batch} (on the worker) with the version each slot serves now, asked once for the
   * whole batch: the champion's output rows, in order, and with challengers every version's.
   */
  private Scored score(List<Row> batch) {
    if (!slots.hasChallengers()) {
      try (ModelSlot.Version<RowScorer> v = slots.champion().acquire()) {
        return new Scored(score(batch, v), null);
      }
    }
    List<ModelSlot.Version<RowScorer>> versions = slots.acquireAll();
    try {
      List<Row> shadow = new ArrayList<>(batch.size() * versions.size());
      List<List<Row>> byVersion = new ArrayList<>(versions.size());
      for (ModelSlot.Version<RowScorer> v : versions) {
        List<Row> rows = score(batch, v);
        shadow.addAll(rows);
        byVersion.add(rows);
      }
      if (idIndex < 0) {
        return new Scored(byVersion.get(0), shadow); // the champion's (first)
      }
      double fraction = lifecycle.canaryFraction();
      List<Row> served = new ArrayList<>(batch.size());
      for (int r = 0; r < batch.size(); r++) {
        boolean canary = ModelLifecycle.canaryShare(batch.get(r).getField(idIndex)) < fraction;
        Row row = byVersion.get(canary ? 1 : 0).get(r);
        row.setField(row.getArity() - 1, canary ? "canary" : "champion");
        served.add(Row.copy(row));
      }
      return new Scored(served, shadow);
    } finally {
      versions.forEach(ModelSlot.Version::close);
    }
  }

  /** Score {@code batch} with one version: the output rows, in order. */
  private List<Row> score(List<Row> batch, ModelSlot.Version<RowScorer> version) {
    RowScorer scorer = version.prepared();
    int n = batch.size();
    List<Object[]> rows = new ArrayList<>(n);
    for (Row row : batch) {
      Object[] features = new Object[featureIndexes.length];
      for (int i = 0; i < featureIndexes.length; i++) {
        features[i] = row.getField(featureIndexes[i]);
      }
      rows.add(features);
    }
    RowScorer.Result result = scorer.score(rows);
    int arity = inputType.getArity();
    boolean versioned = lifecycle.versionColumn();
    List<Row> out = new ArrayList<>(n);
    for (int r = 0; r < n; r++) {
      Row in = batch.get(r);
      Row row = new Row(arity + outputCount + (versioned ? 2 : 1) + (idIndex >= 0 ? 1 : 0));
      for (int i = 0; i < arity; i++) {
        row.setField(i, in.getField(i));
      }
      Object[] outputs = result.outputs(r);
      for (int i = 0; i < outputCount; i++) {
        row.setField(arity + i, outputs == null ? null : outputs[i]);
      }
      row.setField(arity + outputCount, result.error(r));
      if (versioned) {
        row.setField(arity + outputCount + 1, version.version());
      }
      out.add(row);
    }
    return out;
  }

  /** Flink's processing time, in the rule's nanoseconds. */
  private long now() {
    return getProcessingTimeService().getCurrentProcessingTime() * 1_000_000;
  }
}
