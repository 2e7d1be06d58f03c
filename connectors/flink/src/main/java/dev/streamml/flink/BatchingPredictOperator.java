package dev.streamml.flink;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.operators.MailboxExecutor;
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
 * <p>A full (or due) batch is handed to this operator's scoring thread (reading its rows, the
 * native call, building the output rows) while the task goes on gathering. The scoring thread
 * scores batches one at a time, oldest first, and then posts a mail to the task's mailbox, which
 * emits every batch scored so far, oldest first: outputs keep the input's order, and are emitted
 * where the task emits (the mailbox thread, or a legacy source's thread under its checkpoint
 * lock). At most {@link #MAX_IN_FLIGHT} batches are handed over and not yet emitted: a hand-over
 * past that first waits for the oldest and emits it. At the end of the input and before every
 * checkpoint barrier every batch in flight is waited for and emitted, so a checkpoint never holds
 * one. A scoring error fails the task with that error, when its batch's turn to be emitted comes.
 *
 * <p>Each output row is the input row's fields, then the model's outputs, then {@code error}:
 * null when the row was scored, otherwise why it was not (its outputs are then null). Build it with
 * {@link StreammlStreams#predict}.
 *
 * <p>With a model reference ({@link ModelLifecycle}) the model comes from a {@link ModelSlot},
 * asked once per batch on the scoring thread (the version is held for the batch's native calls and
 * released after, so a swap never closes a version under a call): a batch is scored wholly by one
 * version and each output row ends with {@code model_version}. With challengers, every version
 * scores every batch; only the champion's rows (or, with a canary, each row's serving side's) go
 * downstream, every version's rows (champion included) go to the side output, emitted on the task
 * thread with the batch's main output.
 */
public class BatchingPredictOperator extends AbstractStreamOperator<Row>
    implements OneInputStreamOperator<Row, Row>, BoundedOneInput, ProcessingTimeCallback {
  private static final long serialVersionUID = 1L;
  private static final AtomicLong RESTORED_ROWS = new AtomicLong();
  /** Batches handed to the scoring thread and not yet emitted, at most. */
  static final int MAX_IN_FLIGHT = 2;

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
  private transient MailboxExecutor mailbox;
  private transient ExecutorService scoring;
  /** Batches handed over and not yet emitted, oldest first: their output rows, or the error. */
  private transient ArrayDeque<CompletableFuture<Scored>> inFlight;
  private transient StreamRecord<Row> reuse;
  /** The scoring thread's array of a batch's inputs ({@link #doubles}). */
  private transient double[] inputValues;

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
    inFlight = new ArrayDeque<>();
    mailbox = getContainingTask().getMailboxExecutorFactory()
        .createExecutor(getOperatorConfig().getChainIndex());
    scoring = Executors.newSingleThreadExecutor(r -> {
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
    int n = rule.poll(now());
    if (n > 0) {
      handOff(n);
    } // else a timer set for an earlier batch (scored when full): each batch sets its own
  }

  @Override
  public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
    super.prepareSnapshotPreBarrier(checkpointId);
    drain();
  }

  @Override
  public void snapshotState(StateSnapshotContext context) throws Exception {
    super.snapshotState(context);
    bufferState.update(buffer);
  }

  @Override
  public void endInput() throws Exception {
    handOff(rule.flush());
    drain();
  }

  @Override
  public void close() throws Exception {
    boolean stopped = true;
    if (scoring != null) {
      // Batches not yet started are dropped (the task is ending: their rows are in the last
      // checkpoint's buffer or were never acknowledged); the one being scored finishes its call.
      scoring.shutdownNow();
      stopped = scoring.awaitTermination(30, TimeUnit.SECONDS);
    }
    if (slots != null && stopped) {
      slots.close(); // never under a native call still running
    }
    super.close();
  }

  /**
   * Hand the oldest {@code n} rows of the buffer to the scoring thread, once fewer than {@link
   * #MAX_IN_FLIGHT} batches are in flight (waiting for and emitting the oldest meanwhile).
   */
  private void handOff(int n) throws Exception {
    if (n == 0) {
      return;
    }
    while (inFlight.size() >= MAX_IN_FLIGHT) {
      emitOldest();
    }
    List<Row> batch;
    if (n == buffer.size()) {
      batch = buffer;
      buffer = new ArrayList<>(Math.min(policy.maxBatchRows(), 4096));
    } else {
      batch = new ArrayList<>(buffer.subList(0, n));
      buffer.subList(0, n).clear();
    }
    CompletableFuture<Scored> scored = new CompletableFuture<>();
    inFlight.add(scored);
    scoring.execute(() -> scoreAndReturn(batch, scored));
  }

  /** On the scoring thread: score {@code batch}, then have the task emit what is scored. */
  private void scoreAndReturn(List<Row> batch, CompletableFuture<Scored> scored) {
    try {
      scored.complete(score(batch));
    } catch (Throwable e) {
      scored.completeExceptionally(e);
    }
    try {
      mailbox.execute(this::emitScored, "streamml emit scored batches");
    } catch (RejectedExecutionException e) {
      // The task is closing: nothing is emitted any more.
    }
  }

  /** Emit the batches scored so far, oldest first, up to the first one still being scored. */
  private void emitScored() throws Exception {
    while (!inFlight.isEmpty() && inFlight.peek().isDone()) {
      emitOldest();
    }
  }

  /**
   * Wait for the oldest batch in flight and emit its rows (and, with challengers, every version's
   * rows to the side output), or fail with its error.
   */
  private void emitOldest() throws Exception {
    Scored scored;
    try {
      scored = inFlight.poll().get();
    } catch (ExecutionException e) {
      throw e.getCause() instanceof Exception cause ? cause : e;
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

  /** Batches handed to the scoring thread and not yet emitted (for tests). */
  int inFlight() {
    return inFlight.size();
  }

  /** Wait for every batch in flight and emit them, oldest first. */
  private void drain() throws Exception {
    while (!inFlight.isEmpty()) {
      emitOldest();
    }
  }

  /** A scored batch: the rows for downstream, and every version's rows for the side output (or null). */
  record Scored(List<Row> rows, List<Row> shadow) {}

  /**
   * Score {@code batch} (on the scoring thread) with the version each slot serves now, acquired once
   * for the whole batch and released after: the output rows for downstream, in order, and with
   * challengers every version's.
   */
  Scored score(List<Row> batch) {
    double[] doubles = doubles(batch);
    if (!slots.hasChallengers()) {
      try (ModelSlot.Version<RowScorer> v = slots.champion().acquire()) {
        return new Scored(score(batch, doubles, v), null);
      }
    }
    List<ModelSlot.Version<RowScorer>> versions = slots.acquireAll();
    try {
      List<Row> shadow = new ArrayList<>(batch.size() * versions.size());
      List<List<Row>> byVersion = new ArrayList<>(versions.size());
      for (ModelSlot.Version<RowScorer> v : versions) {
        List<Row> rows = score(batch, doubles, v);
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

  /**
   * Score {@code batch} with one version: the output rows, in order, each the input row's fields,
   * the model's outputs, the row's error and (with a model reference) the version. {@code doubles}:
   * the batch's inputs as {@link #doubles} read them, or null.
   */
  private List<Row> score(List<Row> batch, double[] doubles, ModelSlot.Version<RowScorer> version) {
    RowScorer scorer = version.prepared();
    int n = batch.size();
    RowScorer.Result result;
    if (doubles != null) {
      result = scorer.scoreDoubles(doubles, n);
    } else {
      List<Object[]> rows = new ArrayList<>(n);
      for (Row row : batch) {
        Object[] features = new Object[featureIndexes.length];
        for (int i = 0; i < featureIndexes.length; i++) {
          features[i] = row.getField(featureIndexes[i]);
        }
        rows.add(features);
      }
      result = scorer.score(rows);
    }
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

  /**
   * The batch's inputs row after row in an array the scoring thread reuses, if every one is a
   * Double (no boxes or per-row arrays to make); null otherwise.
   */
  private double[] doubles(List<Row> batch) {
    int width = featureIndexes.length;
    int size = batch.size() * width;
    if (inputValues == null || inputValues.length < size) {
      inputValues = new double[size];
    }
    double[] values = inputValues;
    int k = 0;
    for (Row row : batch) {
      for (int index : featureIndexes) {
        if (!(row.getField(index) instanceof Double d)) {
          return null;
        }
        values[k++] = d;
      }
    }
    return values;
  }

  /** Flink's processing time, in the rule's nanoseconds. */
  private long now() {
    return getProcessingTimeService().getCurrentProcessingTime() * 1_000_000;
  }
}
