package dev.streamml.flink;

import dev.streamml.flink.StreammlModelProvider.Challengers;
import dev.streamml.flink.StreammlModelProvider.Opened;
import dev.streamml.flink.StreammlModelProvider.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.SimpleCounter;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeFamily;
import org.apache.flink.table.types.logical.LogicalTypeRoot;
import org.apache.flink.table.types.logical.RowType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Challengers (shadow) and the canary of {@code ML_PREDICT} ({@code docs/lifecycle.md}, "Flink
 * SQL"): each challenger is its own {@link ModelSlot} (resolved, reloaded and trusted like the
 * champion's {@code path}; the pin is the champion's only) and scores every batch the champion
 * scores, each slot asked once per batch. A row's {@code shadow} column holds the entries of the
 * versions that did not serve it; with a canary ({@link ModelLifecycle#canaryShare} of the {@code
 * canary-id} column below the fraction) the first challenger serves the row instead of the champion.
 *
 * <p>Every challenger must open when the task starts, as the champion must (the task fails
 * otherwise, naming the reference): a host never starts a slot empty. A challenger that fails on a
 * batch or refuses a row leaves its entry out and counts it ({@code challengerFailures} of its
 * {@code challenger/<i>} metric group); a new version of it that fails to load is refused by its
 * slot, whose previous version shadows on; the champion serves on.
 */
final class SqlChallengers implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(SqlChallengers.class);

  private final Shape shape;
  /** Challenger i's slot. */
  private final List<ModelSlot<Opened>> slots = new ArrayList<>();
  private final List<Counter> failures = new ArrayList<>();

  SqlChallengers(Shape shape, MetricGroup metrics) {
    this.shape = shape;
    try {
      int i = 0;
      for (String reference : shape.challengers.references()) {
        MetricGroup group = metrics == null ? null : metrics.addGroup("challenger", String.valueOf(++i));
        ModelSlot.Config config = new ModelSlot.Config(
            reference, null, shape.trustedModels, shape.interval(reference));
        failures.add(group == null ? new SimpleCounter() : group.counter("challengerFailures"));
        slots.add(shape.open(config, group));
      }
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /** A batch's challenger side: per challenger its version, per-version reader and each row's outputs. */
  static final class Batch {
    final String[] versions;
    final Opened[] opened;
    /** [challenger][row]: the outputs, or null where that challenger failed. */
    final Object[][][] outputs;

    Batch(int challengers, int rows) {
      versions = new String[challengers];
      opened = new Opened[challengers];
      outputs = new Object[challengers][rows][];
    }
  }

  /** One row scored by every version: the champion's outputs and version, and the batch's challengers. */
  record Scored(Object[] champion, String championVersion, Opened championOpened, Batch batch, int row) {}

  /** Score one row (sync {@code ML_PREDICT}) with {@code champion} and every challenger's serving version. */
  RowData scoreOne(RowData features, ModelSlot.Version<Opened> champion) {
    Object[] championOutputs = StreammlModelProvider.SyncPredict.scoreOne(champion.prepared(), features);
    Batch batch = new Batch(slots.size(), 1);
    for (int j = 0; j < slots.size(); j++) {
      ModelSlot<Opened> slot = slots.get(j);
      try (ModelSlot.Version<Opened> v = slot.acquire()) {
        batch.versions[j] = v.version();
        batch.opened[j] = v.prepared();
        batch.outputs[j][0] = StreammlModelProvider.SyncPredict.scoreOne(v.prepared(), features);
      } catch (RuntimeException e) {
        LOG.warn("model {}: challenger {} failed on a row: {}", shape.path, slot.config().reference(), e.toString());
      }
      if (batch.outputs[j][0] == null) {
        failures.get(j).inc();
      }
    }
    Object id = shape.idIndex >= 0 ? champion.prepared().id(features) : null;
    return output(new Scored(championOutputs, champion.version(), champion.prepared(), batch, 0), id);
  }

  /**
   * Score a batch (async {@code ML_PREDICT}, on the batcher's worker) with the champion's version
   * {@code champion} and every challenger's, each asked once for the batch. The champion's failure
   * fails the batch, as without challengers. The result's row i is {@code [champion outputs, Batch,
   * i]}, which {@link #scored} reads back: {@link FutureBatcher} hands a row's outputs on as they
   * are.
   */
  RowScorer.Result scoreBatch(Opened champion, List<Object[]> rows) {
    RowScorer.Result first = champion.scorer.score(rows);
    int n = rows.size();
    Batch batch = new Batch(slots.size(), n);
    for (int j = 0; j < slots.size(); j++) {
      ModelSlot<Opened> slot = slots.get(j);
      try (ModelSlot.Version<Opened> v = slot.acquire()) { // once per batch: the whole batch by one version
        batch.versions[j] = v.version();
        batch.opened[j] = v.prepared();
        RowScorer.Result result = v.prepared().scorer.score(rows);
        for (int r = 0; r < n; r++) {
          batch.outputs[j][r] = result.outputs(r);
        }
      } catch (RuntimeException e) {
        LOG.warn("model {}: challenger {} failed on a batch of {} rows: {}",
            shape.path, slot.config().reference(), n, e.toString());
        Arrays.fill(batch.outputs[j], null);
      }
      long failed = Arrays.stream(batch.outputs[j]).filter(o -> o == null).count();
      if (failed > 0) {
        failures.get(j).inc(failed);
      }
    }
    Object[][] packed = new Object[n][];
    String[] errors = new String[n];
    for (int r = 0; r < n; r++) {
      packed[r] = new Object[] {first.outputs(r), batch, r};
      errors[r] = first.error(r);
    }
    return new RowScorer.Result(packed, errors, 0);
  }

  /** Read back a row of {@link #scoreBatch}'s result, with the champion's version. */
  static Scored scored(Object[] packed, ModelSlot.Version<Opened> champion) {
    return new Scored((Object[]) packed[0], champion.version(), champion.prepared(), (Batch) packed[1],
        (Integer) packed[2]);
  }

  /**
   * The output row of a scored row: the serving side's outputs and version ({@code id}'s canary
   * share below the fraction: the first challenger, {@code served_by} = {@code canary}; otherwise
   * the champion), and in {@code shadow} the entries of the other versions that scored it.
   */
  RowData output(Scored s, Object id) {
    Challengers c = shape.challengers;
    boolean canary = c.canary() > 0 && ModelLifecycle.canaryShare(id) < c.canary();
    Batch b = s.batch();
    int r = s.row();
    GenericArrayData shadow = null;
    if (shape.hasShadow()) {
      List<RowData> entries = new ArrayList<>(b.versions.length);
      if (canary && s.champion() != null) {
        entries.add(s.championOpened().shadowEntry(s.champion(), s.championVersion()));
      }
      for (int j = canary ? 1 : 0; j < b.versions.length; j++) {
        if (b.outputs[j][r] != null) {
          entries.add(b.opened[j].shadowEntry(b.outputs[j][r], b.versions[j]));
        }
      }
      shadow = new GenericArrayData(entries.toArray());
    }
    String servedBy = c.canary() > 0 ? (canary ? "canary" : "champion") : null;
    if (canary) {
      return b.opened[0].output(b.outputs[0][r], b.versions[0], servedBy, shadow);
    }
    return s.championOpened().output(s.champion(), s.championVersion(), servedBy, shadow);
  }

  @Override
  public void close() {
    for (ModelSlot<Opened> slot : slots) {
      slot.close();
    }
    slots.clear();
  }

  /**
   * Check the {@code canary} and {@code canary-id} options against the challengers and the INPUT
   * columns {@code inputs}: the canary-id column's index, or -1 without a canary.
   */
  static int checkCanary(Challengers c, List<String> inputs) {
    if (c.canaryId() != null && c.canary() == 0) {
      throw new ModelException("'canary-id' = '" + c.canaryId() + "' without 'canary': set 'canary' to the"
          + " fraction of events the challenger serves, or drop 'canary-id'");
    }
    if (c.canary() == 0) {
      return -1;
    }
    if (!(c.canary() > 0 && c.canary() <= 1)) {
      throw new ModelException("'canary' must be a fraction in (0, 1], got " + c.canary());
    }
    if (c.references().size() != 1) {
      throw new ModelException("'canary' needs exactly one model in 'challengers' (the version that serves the"
          + " canary share), got " + c.references().size());
    }
    if (c.canaryId() == null) {
      throw new ModelException("'canary' needs 'canary-id': the INPUT column (listed in the DESCRIPTOR) holding"
          + " the event id");
    }
    int index = inputs.indexOf(c.canaryId());
    if (index < 0) {
      throw new ModelException("'canary-id' = '" + c.canaryId() + "' is not an INPUT column of the model; its"
          + " INPUT columns are " + inputs + " (declare the id column in INPUT and list it in the DESCRIPTOR)");
    }
    return index;
  }

  /**
   * Check the {@code shadow} and {@code served_by} OUTPUT columns against the options: the names of
   * the shadow element's fields after {@code model_version}, or null without a shadow column.
   */
  static String[] checkOutputs(Challengers c, String[] names, LogicalType[] types) {
    String[] shadowFields = null;
    boolean challengers = !c.references().isEmpty();
    for (int i = 0; i < names.length; i++) {
      if (names[i].equals(Shape.SHADOW)) {
        if (!challengers) {
          throw new ModelException("OUTPUT column 'shadow' holds the challengers' outputs, but the model has no"
              + " 'challengers' option; add 'challengers' = '<reference>[,<reference>...]' or drop the column");
        }
        shadowFields = shadowFields(types[i]);
      } else if (names[i].equals(Shape.SERVED_BY)) {
        if (c.canary() == 0) {
          throw new ModelException("OUTPUT column 'served_by' names the side that served a row with a canary,"
              + " but the model has no 'canary' option; add 'canary' and 'canary-id' or drop the column");
        }
        if (!types[i].is(LogicalTypeFamily.CHARACTER_STRING)) {
          throw new ModelException("OUTPUT column 'served_by' must be STRING, got " + types[i].asSummaryString());
        }
      }
    }
    if (challengers && shadowFields == null && c.canary() == 0) {
      throw new ModelException("'challengers' without an OUTPUT column 'shadow' (or a 'canary'): the challengers'"
          + " outputs would go nowhere; declare shadow ARRAY<ROW<model_version STRING, <output> <type>, ...>>");
    }
    return shadowFields;
  }

  private static String[] shadowFields(LogicalType type) {
    String expected = "OUTPUT column 'shadow' must be ARRAY<ROW<model_version STRING, <output> <type>, ...>>"
        + " (one element per version that did not serve the row: its version, then model outputs by name), got "
        + type.asSummaryString();
    if (!(type instanceof ArrayType array) || !(array.getElementType() instanceof RowType row)
        || row.getFieldCount() < 2 || !row.getFieldNames().get(0).equals(StreammlStreams.MODEL_VERSION)
        || !row.getTypeAt(0).is(LogicalTypeFamily.CHARACTER_STRING)) {
      throw new ModelException(expected);
    }
    for (LogicalType t : row.getChildren()) {
      if (t.is(LogicalTypeRoot.ROW) || t.is(LogicalTypeRoot.ARRAY) || t.is(LogicalTypeRoot.MAP)) {
        throw new ModelException(expected);
      }
    }
    return row.getFieldNames().subList(1, row.getFieldCount()).toArray(String[]::new);
  }
}
