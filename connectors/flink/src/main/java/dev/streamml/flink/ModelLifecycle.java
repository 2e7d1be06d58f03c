package dev.streamml.flink;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.types.Row;
import org.apache.flink.util.OutputTag;

/**
 * What a DataStream step scores with: a champion reference, optional challengers (shadow), how often
 * to re-resolve, and whether outputs name their version ({@code docs/lifecycle.md}, "Flink").
 *
 * <pre>{@code
 * ModelLifecycle models = ModelLifecycle.of("/models/fraud")          // the champion alias
 *     .reloadEvery(Duration.ofSeconds(10))
 *     .withChallengers(List.of("/models/fraud@challenger"));
 * StreammlStreams.Predictions p = StreammlStreams.predict("score", events, models, BatchPolicy.DEFAULT);
 * p.oks();     // the champion's rows, each ending with model_version
 * p.shadow();  // every version's rows for every event (champion included): route to a store or topic
 * }</pre>
 */
public final class ModelLifecycle implements Serializable {
  private static final long serialVersionUID = 1L;
  /** The default re-resolution interval of a model directory reference. */
  public static final Duration DEFAULT_RELOAD_INTERVAL = Duration.ofSeconds(30);

  private final ModelSlot.Config champion;
  private final List<String> challengers;
  private final boolean versionColumn;
  private final OutputTag<Row> shadowTag;
  /** The shape the step was built for (names; outputs as Arrow fields' text); null: unchecked. */
  private final List<String> inputs;
  private final List<String> outputs;
  /** The canary fraction (0: none) and the field holding the event id. */
  private final double canary;
  private final String idField;

  private ModelLifecycle(ModelSlot.Config champion, List<String> challengers, boolean versionColumn,
      OutputTag<Row> shadowTag, List<String> inputs, List<String> outputs, double canary, String idField) {
    this.champion = champion;
    this.challengers = List.copyOf(challengers);
    this.versionColumn = versionColumn;
    this.shadowTag = shadowTag;
    this.inputs = inputs;
    this.outputs = outputs;
    this.canary = canary;
    this.idField = idField;
  }

  /** A binary's path, scored as before: loaded once, no {@code model_version} column. */
  public static ModelLifecycle fixed(String path) {
    return new ModelLifecycle(ModelSlot.Config.of(path), List.of(), false, null, null, null, 0, null);
  }

  /**
   * A reference (a model directory, {@code DIR@ALIAS} or a binary's path), re-resolved every
   * {@link #DEFAULT_RELOAD_INTERVAL}; outputs end with {@code model_version}.
   */
  public static ModelLifecycle of(String reference) {
    return new ModelLifecycle(new ModelSlot.Config(reference, null, null, DEFAULT_RELOAD_INTERVAL),
        List.of(), true, null, null, null, 0, null);
  }

  /** Re-resolve every {@code interval} (null: resolve once at start, never swap). */
  public ModelLifecycle reloadEvery(Duration interval) {
    ModelSlot.Config c = new ModelSlot.Config(
        champion.reference(), champion.sha256(), champion.trustedModels(), interval);
    return new ModelLifecycle(c, challengers, versionColumn, shadowTag, inputs, outputs, canary, idField);
  }

  /** Every resolved binary must be in this trust file (one SHA-256 per line). */
  public ModelLifecycle trustedModels(String trustFile) {
    ModelSlot.Config c = new ModelSlot.Config(
        champion.reference(), champion.sha256(), trustFile, champion.reloadInterval());
    return new ModelLifecycle(c, challengers, versionColumn, shadowTag, inputs, outputs, canary, idField);
  }

  /** Challengers scored in shadow on every batch (each its own reference, same interval and trust). */
  public ModelLifecycle withChallengers(List<String> references) {
    return new ModelLifecycle(champion, references, versionColumn || !references.isEmpty(), shadowTag, inputs, outputs, canary, idField);
  }

  /**
   * Serve a {@code fraction} of events with the first challenger instead of the champion: an
   * event goes to the canary when {@link #canaryShare} of its {@code idField} is below {@code
   * fraction} (deterministic across processes and hosts, and sticky). Rows then end with {@code
   * served_by}: {@code champion} or {@code canary} (in the shadow output, on the row that was served;
   * null on the others).
   */
  public ModelLifecycle canary(double fraction, String idField) {
    if (!(fraction >= 0 && fraction <= 1)) {
      throw new ModelException("the canary fraction must be in [0, 1], got " + fraction);
    }
    return new ModelLifecycle(champion, challengers, versionColumn, shadowTag, inputs, outputs, fraction, idField);
  }

  /**
   * Where an event id falls in [0, 1), the canary rule every streamml host shares
   * ({@code streamml.lifecycle.canary_share}): the first 8 bytes of the SHA-256 of the id's UTF-8
   * text ({@link String#valueOf}; a {@code byte[]} as it is), big-endian unsigned, divided by 2^64.
   */
  public static double canaryShare(Object id) {
    byte[] data = id instanceof byte[] b ? b : String.valueOf(id).getBytes(StandardCharsets.UTF_8);
    byte[] hash;
    try {
      hash = MessageDigest.getInstance("SHA-256").digest(data);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    long x = ByteBuffer.wrap(hash, 0, 8).getLong();
    // The unsigned value rounded to the nearest double, as Python's int / float does.
    double unsigned = x >= 0 ? (double) x : ((double) ((x >>> 1) | (x & 1))) * 2.0;
    return unsigned / 18446744073709551616.0;
  }

  /** The canary fraction; 0 without a canary. */
  public double canaryFraction() {
    return canary;
  }

  public String idField() {
    return idField;
  }

  ModelLifecycle forStep(String stepId, TypeInformation<Row> shadowType, List<Field> in, List<Field> out) {
    if (canary > 0 && challengers.isEmpty()) {
      throw new ModelException("step '" + stepId + "': a canary needs a challenger (withChallengers) to serve it");
    }
    OutputTag<Row> tag = challengers.isEmpty() ? null : new OutputTag<>(stepId + "-shadow", shadowType);
    List<String> inNames = in.stream().map(Field::getName).toList();
    List<String> outText = out.stream().map(Field::toString).toList();
    return new ModelLifecycle(champion, challengers, versionColumn, tag, inNames, outText, canary, idField);
  }

  public ModelSlot.Config champion() {
    return champion;
  }

  public List<String> challengers() {
    return challengers;
  }

  /** Whether output rows end with {@code model_version}. */
  public boolean versionColumn() {
    return versionColumn;
  }

  /** The side output every version's rows go to; null without challengers. */
  public OutputTag<Row> shadowTag() {
    return shadowTag;
  }

  /**
   * Open the champion's and challengers' slots: {@code prepare} builds each version's scorer (after
   * checking the version has the shape the step was built for; a version that does not is
   * refused); the champion's counters go to {@code metrics}, challenger i's to its {@code
   * challenger/i} subgroup.
   */
  <T> Slots<T> open(ModelSlot.Prepare<T> prepare, MetricGroup metrics) {
    ModelSlot.Prepare<T> checked = (model, version) -> {
      check(model, version);
      return prepare.prepare(model, version);
    };
    List<ModelSlot<T>> all = new ArrayList<>();
    try {
      all.add(new ModelSlot<>(champion, checked));
      for (String c : challengers) {
        all.add(new ModelSlot<>(champion.withReference(c), checked));
      }
    } catch (RuntimeException e) {
      all.forEach(ModelSlot::close);
      throw e;
    }
    if (metrics != null) {
      all.get(0).registerMetrics(metrics);
      for (int i = 1; i < all.size(); i++) {
        all.get(i).registerMetrics(metrics.addGroup("challenger", String.valueOf(i)));
      }
    }
    return new Slots<>(all);
  }

  private void check(NativeModel model, String version) {
    if (inputs == null) {
      return;
    }
    List<String> in = model.inputSchema().getFields().stream().map(Field::getName).toList();
    List<String> out = model.outputSchema().getFields().stream().map(Field::toString).toList();
    if (!in.equals(inputs) || !out.equals(outputs)) {
      throw new ModelException("model binary '" + model.path() + "' (version " + version + ") has inputs "
          + in + " and outputs " + out + ", but the step was built for inputs " + inputs + " and outputs "
          + outputs + "; a new version must keep the inputs and outputs (start a new job otherwise)");
    }
  }

  /** The open slots of a step: the champion first, then the challengers. */
  static final class Slots<T> implements AutoCloseable {
    private final List<ModelSlot<T>> all;

    Slots(List<ModelSlot<T>> all) {
      this.all = all;
    }

    ModelSlot<T> champion() {
      return all.get(0);
    }

    List<ModelSlot<T>> all() {
      return all;
    }

    boolean hasChallengers() {
      return all.size() > 1;
    }

    /** One held version per slot, the champion's first: close each when the batch is done. */
    List<ModelSlot.Version<T>> acquireAll() {
      List<ModelSlot.Version<T>> versions = new ArrayList<>(all.size());
      for (ModelSlot<T> slot : all) {
        versions.add(slot.acquire());
      }
      return versions;
    }

    @Override
    public void close() {
      all.forEach(ModelSlot::close);
    }
  }
}
