package dev.streamml.flink;

import java.util.ArrayList;
import java.util.List;
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

/**
 * Scores a stream of rows in micro-batches (the {@link MicroBatcher} rule, on Flink's processing
 * time and timers) with one native call per batch. The rows waiting in the buffer are operator
 * state: a checkpoint stores them and a restore scores them at once, so a failover loses none and,
 * with an exactly-once sink, emits none twice.
 *
 * <p>Each output row is the input row's fields, then the model's outputs, then {@code error}:
 * null when the row was scored, otherwise why it was not (its outputs are then null). Build it with
 * {@link StreammlStreams#predict}.
 */
public class BatchingPredictOperator extends AbstractStreamOperator<Row>
    implements OneInputStreamOperator<Row, Row>, BoundedOneInput, ProcessingTimeCallback {
  private static final long serialVersionUID = 1L;
  private static final AtomicLong RESTORED_ROWS = new AtomicLong();

  private final String modelPath;
  private final BatchPolicy policy;
  private final RowTypeInfo inputType;
  private final int[] featureIndexes;
  private final int outputCount;

  private transient RowScorer scorer;
  private transient List<Row> buffer;
  private transient ListState<Row> bufferState;
  private transient MicroBatcher rule;

  BatchingPredictOperator(
      String modelPath, BatchPolicy policy, RowTypeInfo inputType, int[] featureIndexes, int outputCount) {
    this.modelPath = modelPath;
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
    scorer = RowScorer.open(modelPath, null);
    long now = now();
    // Restored rows count as having waited max_wait: they are scored at once.
    rule = new MicroBatcher(policy, buffer.size(), now - policy.maxWait().toNanos());
    if (!buffer.isEmpty()) {
      getProcessingTimeService().registerTimer(now / 1_000_000, this);
    }
  }

  @Override
  public void processElement(StreamRecord<Row> element) {
    buffer.add(element.getValue());
    long now = now();
    for (int n : rule.add(1, now)) {
      flush(n);
    }
    if (rule.pending() == 1) { // this row started a batch: a timer for when it is due
      getProcessingTimeService().registerTimer(Math.floorDiv(rule.deadline() + 999_999, 1_000_000), this);
    }
  }

  @Override
  public void onProcessingTime(long time) {
    int n = rule.poll(now());
    if (n > 0) {
      flush(n);
    } // else a timer set for an earlier batch (scored when full): each batch sets its own
  }

  @Override
  public void snapshotState(StateSnapshotContext context) throws Exception {
    super.snapshotState(context);
    bufferState.update(buffer);
  }

  @Override
  public void endInput() {
    flush(rule.flush());
  }

  @Override
  public void close() throws Exception {
    if (scorer != null) {
      scorer.close();
    }
    super.close();
  }

  /** Score and emit the oldest {@code n} rows of the buffer. */
  private void flush(int n) {
    if (n == 0) {
      return;
    }
    List<Row> batch = n == buffer.size() ? buffer : buffer.subList(0, n);
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
    for (int r = 0; r < n; r++) {
      Row in = batch.get(r);
      Row out = new Row(arity + outputCount + 1);
      for (int i = 0; i < arity; i++) {
        out.setField(i, in.getField(i));
      }
      Object[] outputs = result.outputs(r);
      for (int i = 0; i < outputCount; i++) {
        out.setField(arity + i, outputs == null ? null : outputs[i]);
      }
      out.setField(arity + outputCount, result.error(r));
      output.collect(new StreamRecord<>(out));
    }
    batch.clear();
  }

  /** Flink's processing time, in the rule's nanoseconds. */
  private long now() {
    return getProcessingTimeService().getCurrentProcessingTime() * 1_000_000;
  }
}
