package dev.streamml.flink;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedSchema;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.PredictFunction;
import org.apache.flink.table.ml.AsyncPredictRuntimeProvider;
import org.apache.flink.table.ml.ModelProvider;
import org.apache.flink.table.ml.PredictRuntimeProvider;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.LogicalTypeRoot;

/** What {@link StreammlModelProviderFactory} makes: per-row and micro-batched predict functions. */
public final class StreammlModelProvider implements PredictRuntimeProvider, AsyncPredictRuntimeProvider {
  private final String path;
  private final String sha256;
  private final String trustedModels;
  private final Duration reloadInterval;
  private final BatchPolicy policy;
  private final ResolvedSchema inputs;
  private final ResolvedSchema outputs;
  private final Challengers challengers;

  StreammlModelProvider(String path, String sha256, String trustedModels, BatchPolicy policy,
      ResolvedSchema inputs, ResolvedSchema outputs) {
    this(path, sha256, trustedModels, null, policy, inputs, outputs, Challengers.NONE);
  }

  StreammlModelProvider(String path, String sha256, String trustedModels, Duration reloadInterval,
      BatchPolicy policy, ResolvedSchema inputs, ResolvedSchema outputs, Challengers challengers) {
    this.challengers = challengers;
    this.path = path;
    this.sha256 = sha256;
    this.trustedModels = trustedModels;
    this.reloadInterval = reloadInterval;
    this.policy = policy;
    this.inputs = inputs;
    this.outputs = outputs;
    new Shape(path, sha256, trustedModels, reloadInterval, inputs, outputs, challengers); // refuse now, at planning
  }

  /**
   * The {@code challengers}, {@code canary} and {@code canary-id} model options: challengers scored
   * on every batch (each entry a model reference), a fraction of events served by the first.
   */
  record Challengers(List<String> references, double canary, String canaryId) implements java.io.Serializable {
    static final Challengers NONE = new Challengers(List.of(), 0, null);

    Challengers {
      references = List.copyOf(references);
    }
  }

  private Shape shape() {
    return new Shape(path, sha256, trustedModels, reloadInterval, inputs, outputs, challengers);
  }

  @Override
  public PredictFunction createPredictFunction(ModelProvider.Context context) {
    return new SyncPredict(shape());
  }

  @Override
  public AsyncPredictFunction createAsyncPredictFunction(ModelProvider.Context context) {
    return new AsyncPredict(shape(), policy);
  }

  @Override
  public ModelProvider copy() {
    return new StreammlModelProvider(path, sha256, trustedModels, reloadInterval, policy, inputs, outputs, challengers);
  }

  /** The model, and how SQL rows map to its inputs and outputs. */
  static final class Shape implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    /** The OUTPUT column every challenger's (unserved version's) outputs go to. */
    static final String SHADOW = "shadow";
    /** The OUTPUT column naming the side that served a row, with a canary. */
    static final String SERVED_BY = "served_by";
    final String path;
    final String sha256;
    final String trustedModels;
    final Duration reloadInterval;
    final Challengers challengers;
    final LogicalType[] inputTypes;
    /** The INPUT columns the binary reads (all but the canary id), in order. */
    final int[] features;
    /** The INPUT column holding the event id; -1 without a canary. */
    final int idIndex;
    final String[] outputNames;
    final LogicalType[] outputTypes;
    /** The fields of a shadow element after model_version (model outputs); null without the column. */
    final String[] shadowFields;

    Shape(String path, String sha256, String trustedModels, Duration reloadInterval,
        ResolvedSchema inputs, ResolvedSchema outputs) {
      this(path, sha256, trustedModels, reloadInterval, inputs, outputs, Challengers.NONE);
    }

    Shape(String path, String sha256, String trustedModels, Duration reloadInterval,
        ResolvedSchema inputs, ResolvedSchema outputs, Challengers challengers) {
      this.path = path;
      this.sha256 = sha256;
      this.trustedModels = trustedModels;
      this.reloadInterval = reloadInterval;
      this.challengers = challengers;
      this.inputTypes = inputs.getColumns().stream()
          .map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
      this.outputNames = outputs.getColumns().stream().map(Column::getName).toArray(String[]::new);
      this.outputTypes = outputs.getColumns().stream()
          .map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
      List<String> inputNames = inputs.getColumns().stream().map(Column::getName).toList();
      this.idIndex = SqlChallengers.checkCanary(challengers, inputNames);
      this.features = java.util.stream.IntStream.range(0, inputTypes.length).filter(i -> i != idIndex).toArray();
      this.shadowFields = SqlChallengers.checkOutputs(challengers, outputNames, outputTypes);
    }

    /** Whether the OUTPUT declares a {@code shadow} column. */
    boolean hasShadow() {
      return shadowFields != null;
    }

    boolean hasChallengers() {
      return !challengers.references().isEmpty();
    }

    /** The challengers of {@code slot}'s champion (null without any); closes {@code slot} if they fail to open. */
    SqlChallengers openChallengers(ModelSlot<Opened> slot, MetricGroup metrics) {
      if (!hasChallengers()) {
        return null;
      }
      try {
        return new SqlChallengers(this, metrics);
      } catch (RuntimeException e) {
        slot.close();
        throw e;
      }
    }

    /**
     * Open the model {@code path} names now, in a slot that re-resolves it every {@code
     * reload-interval} (default 30 s for a model directory; a binary's path without one is loaded
     * once, as before); every version is checked against the declared columns (one that does not
     * fit is refused). The slot's counters go to {@code metrics}.
     */
    ModelSlot<Opened> open(MetricGroup metrics) {
      return open(new ModelSlot.Config(path, sha256, trustedModels, interval(path)), metrics);
    }

    /** The reload interval of {@code reference}: the option, else 30 s for a model directory. */
    Duration interval(String reference) {
      return reloadInterval != null ? reloadInterval
          : ModelReference.isDirectory(reference) ? ModelLifecycle.DEFAULT_RELOAD_INTERVAL : null;
    }

    /** Open a slot for {@code config}, each version checked against the declared columns. */
    ModelSlot<Opened> open(ModelSlot.Config config, MetricGroup metrics) {
      ModelSlot<Opened> slot = new ModelSlot<>(config, this::open);
      if (metrics != null) {
        slot.registerMetrics(metrics);
      }
      return slot;
    }

    /** Check that the model's declared columns fit {@code model}, and score through it. */
    private Opened open(NativeModel model, String version) {
      String path = model.path();
      List<Field> modelInputs = model.inputSchema().getFields();
      if (modelInputs.size() != features.length) {
        throw new ModelException("model binary '" + path + "' has " + modelInputs.size()
            + " inputs, the CREATE MODEL statement declares " + features.length
            + (idIndex >= 0 ? " (besides the canary-id column)" : ""));
      }
      List<Field> modelOutputs = model.outputSchema().getFields();
      int[] index = new int[outputNames.length];
      for (int i = 0; i < outputNames.length; i++) {
        index[i] = outputIndex(modelOutputs, outputNames[i]);
        if (index[i] < 0 && outputNames[i].equals(StreammlStreams.MODEL_VERSION)) {
          index[i] = VERSION; // a declared column the model does not have: the version's name
        } else if (index[i] < 0 && hasShadow() && outputNames[i].equals(SHADOW)) {
          index[i] = SHADOW_COLUMN;
        } else if (index[i] < 0 && challengers.canary() > 0 && outputNames[i].equals(SERVED_BY)) {
          index[i] = SERVED_BY_COLUMN;
        } else if (index[i] < 0) {
          throw noOutput(path, outputNames[i], "", modelOutputs);
        }
      }
      int[] shadowIndex = null;
      if (hasShadow()) {
        shadowIndex = new int[shadowFields.length];
        for (int k = 0; k < shadowFields.length; k++) {
          shadowIndex[k] = outputIndex(modelOutputs, shadowFields[k]);
          if (shadowIndex[k] < 0) {
            throw noOutput(path, shadowFields[k], " (a field of the shadow column's ROW)", modelOutputs);
          }
        }
      }
      return new Opened(new RowScorer(model, null), index, shadowIndex, this);
    }

    private static int outputIndex(List<Field> modelOutputs, String name) {
      for (int j = 0; j < modelOutputs.size(); j++) {
        if (modelOutputs.get(j).getName().equals(name)) {
          return j;
        }
      }
      return -1;
    }

    private static ModelException noOutput(String path, String name, String where, List<Field> modelOutputs) {
      return new ModelException("model binary '" + path + "' has no output '" + name + "'" + where
          + " (declared in CREATE MODEL ... OUTPUT); its outputs are "
          + modelOutputs.stream().map(Field::getName).toList());
    }
  }

  /** An output column that holds the version's name, not a model output. */
  static final int VERSION = -2;
  /** The {@code shadow} output column. */
  static final int SHADOW_COLUMN = -3;
  /** The {@code served_by} output column. */
  static final int SERVED_BY_COLUMN = -4;

  /** An open model with the output mapping. */
  static final class Opened implements AutoCloseable {
    final RowScorer scorer;
    private final int[] outputIndex;
    private final int[] shadowIndex;
    private final int[] features;
    private final RowData.FieldGetter[] getters;
    private final RowData.FieldGetter idGetter;
    /** Rows of DOUBLE inputs read without boxing (one thread: the sync function's). */
    private final double[] doubles;

    Opened(RowScorer scorer, int[] outputIndex, int[] shadowIndex, Shape shape) {
      this.scorer = scorer;
      this.outputIndex = outputIndex;
      this.shadowIndex = shadowIndex;
      this.features = shape.features;
      this.getters = new RowData.FieldGetter[features.length];
      boolean allDouble = getters.length > 0;
      for (int i = 0; i < getters.length; i++) {
        getters[i] = RowData.createFieldGetter(shape.inputTypes[features[i]], features[i]);
        allDouble &= shape.inputTypes[features[i]].getTypeRoot() == LogicalTypeRoot.DOUBLE;
      }
      this.idGetter = shape.idIndex < 0 ? null
          : RowData.createFieldGetter(shape.inputTypes[shape.idIndex], shape.idIndex);
      this.doubles = allDouble ? new double[getters.length] : null;
    }

    /** The row's inputs as doubles when every input is DOUBLE and none is null, else null (reused). */
    double[] doubles(RowData row) {
      if (doubles == null) {
        return null;
      }
      for (int i = 0; i < doubles.length; i++) {
        if (row.isNullAt(features[i])) {
          return null;
        }
        doubles[i] = row.getDouble(features[i]);
      }
      return doubles;
    }

    Object[] features(RowData row) {
      Object[] values = new Object[getters.length];
      for (int i = 0; i < values.length; i++) {
        values[i] = external(getters[i].getFieldOrNull(row));
      }
      return values;
    }

    /** The event id of {@code row} (the canary-id column) as the canary rule reads it. */
    Object id(RowData row) {
      return external(idGetter.getFieldOrNull(row));
    }

    private static Object external(Object v) {
      return v instanceof StringData s ? s.toString() : v;
    }

    /**
     * The output row; every column null when the row could not be scored, but a declared {@code
     * model_version}, which names {@code version} always.
     */
    RowData output(Object[] outputs, String version) {
      return output(outputs, version, null, null);
    }

    /** The output row, with the side that served it and the unserved versions' entries. */
    RowData output(Object[] outputs, String version, String servedBy, ArrayData shadow) {
      GenericRowData out = new GenericRowData(outputIndex.length);
      for (int i = 0; i < outputIndex.length; i++) {
        if (outputIndex[i] == VERSION) {
          out.setField(i, StringData.fromString(version));
        } else if (outputIndex[i] == SHADOW_COLUMN) {
          out.setField(i, shadow);
        } else if (outputIndex[i] == SERVED_BY_COLUMN) {
          out.setField(i, servedBy == null ? null : StringData.fromString(servedBy));
        } else if (outputs != null) {
          out.setField(i, internal(outputs[outputIndex[i]]));
        }
      }
      return out;
    }

    /** A {@code shadow} element: this version's name and its outputs the ROW names. */
    RowData shadowEntry(Object[] outputs, String version) {
      GenericRowData entry = new GenericRowData(1 + shadowIndex.length);
      entry.setField(0, StringData.fromString(version));
      for (int k = 0; k < shadowIndex.length; k++) {
        entry.setField(1 + k, internal(outputs[shadowIndex[k]]));
      }
      return entry;
    }

    private static Object internal(Object v) {
      return v instanceof String s ? StringData.fromString(s) : v;
    }

    @Override
    public void close() {
      scorer.close();
    }
  }

  /** {@code ML_PREDICT} without async: one native call per row (per version), on the core's one-row path. */
  public static final class SyncPredict extends PredictFunction {
    private static final long serialVersionUID = 1L;
    private final Shape shape;
    private transient ModelSlot<Opened> slot;
    private transient SqlChallengers challengers;

    SyncPredict(Shape shape) {
      this.shape = shape;
    }

    @Override
    public void open(FunctionContext context) {
      slot = shape.open(context.getMetricGroup());
      challengers = shape.openChallengers(slot, context.getMetricGroup());
    }

    @Override
    public Collection<RowData> predict(RowData features) {
      try (ModelSlot.Version<Opened> version = slot.acquire()) { // a row is a batch
        if (challengers != null) {
          return List.of(challengers.scoreOne(features, version));
        }
        Opened opened = version.prepared();
        return List.of(opened.output(scoreOne(opened, features), version.version()));
      }
    }

    /** The outputs of one row by one version (null: refused). */
    static Object[] scoreOne(Opened opened, RowData features) {
      double[] doubles = opened.doubles(features);
      RowScorer.Result result = doubles != null
          ? opened.scorer.scoreOneDoubles(doubles)
          : opened.scorer.scoreOne(opened.features(features));
      return result.outputs(0);
    }

    @Override
    public void close() {
      if (challengers != null) {
        challengers.close();
      }
      if (slot != null) {
        slot.close();
      }
    }
  }

  /** {@code ML_PREDICT} with {@code 'async' = 'true'}: concurrent rows scored in micro-batches. */
  public static final class AsyncPredict extends AsyncPredictFunction {
    private static final long serialVersionUID = 1L;
    private final Shape shape;
    private final BatchPolicy policy;
    private transient ModelSlot<Opened> slot;
    private transient Opened reader;
    private transient FutureBatcher<Opened, Collection<RowData>> batcher;
    private transient SqlChallengers challengers;
    private transient FutureBatcher<Opened, SqlChallengers.Scored> shadowBatcher;

    AsyncPredict(Shape shape, BatchPolicy policy) {
      this.shape = shape;
      this.policy = policy;
    }

    @Override
    public void open(FunctionContext context) {
      slot = shape.open(context.getMetricGroup());
      try (ModelSlot.Version<Opened> first = slot.acquire()) {
        reader = first.prepared(); // reads rows by the declared INPUT types: the same for every version
      }
      challengers = shape.openChallengers(slot, context.getMetricGroup());
      if (challengers != null) {
        shadowBatcher = new FutureBatcher<>(slot, challengers::scoreBatch, policy, SqlChallengers::scored);
        return;
      }
      batcher = new FutureBatcher<>(slot, opened -> opened.scorer, policy,
          (outputs, version) -> List.of(version.prepared().output(outputs, version.version())));
    }

    @Override
    public CompletableFuture<Collection<RowData>> asyncPredict(RowData features) {
      if (challengers != null) {
        CompletableFuture<SqlChallengers.Scored> scored = new CompletableFuture<>();
        Object id = shape.idIndex >= 0 ? reader.id(features) : null;
        shadowBatcher.add(reader.features(features), scored);
        return scored.thenApply(s -> List.of(challengers.output(s, id)));
      }
      CompletableFuture<Collection<RowData>> result = new CompletableFuture<>();
      batcher.add(reader.features(features), result);
      return result;
    }

    @Override
    public void close() {
      if (batcher != null) {
        batcher.close();
      }
      if (shadowBatcher != null) {
        shadowBatcher.close();
      }
      if (challengers != null) {
        challengers.close();
      }
      if (slot != null) {
        slot.close();
      }
    }
  }
}
