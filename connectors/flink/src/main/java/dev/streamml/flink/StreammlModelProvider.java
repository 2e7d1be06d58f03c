package dev.streamml.flink;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedSchema;
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

  StreammlModelProvider(String path, String sha256, String trustedModels, BatchPolicy policy,
      ResolvedSchema inputs, ResolvedSchema outputs) {
    this(path, sha256, trustedModels, null, policy, inputs, outputs);
  }

  StreammlModelProvider(String path, String sha256, String trustedModels, Duration reloadInterval,
      BatchPolicy policy, ResolvedSchema inputs, ResolvedSchema outputs) {
    this.path = path;
    this.sha256 = sha256;
    this.trustedModels = trustedModels;
    this.reloadInterval = reloadInterval;
    this.policy = policy;
    this.inputs = inputs;
    this.outputs = outputs;
  }

  @Override
  public PredictFunction createPredictFunction(ModelProvider.Context context) {
    return new SyncPredict(new Shape(path, sha256, trustedModels, reloadInterval, inputs, outputs));
  }

  @Override
  public AsyncPredictFunction createAsyncPredictFunction(ModelProvider.Context context) {
    return new AsyncPredict(new Shape(path, sha256, trustedModels, reloadInterval, inputs, outputs), policy);
  }

  @Override
  public ModelProvider copy() {
    return new StreammlModelProvider(path, sha256, trustedModels, reloadInterval, policy, inputs, outputs);
  }

  /** The model, and how SQL rows map to its inputs and outputs. */
  static final class Shape implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    final String path;
    final String sha256;
    final String trustedModels;
    final Duration reloadInterval;
    final LogicalType[] inputTypes;
    final String[] outputNames;
    final LogicalType[] outputTypes;

    Shape(String path, String sha256, String trustedModels, Duration reloadInterval,
        ResolvedSchema inputs, ResolvedSchema outputs) {
      this.path = path;
      this.sha256 = sha256;
      this.trustedModels = trustedModels;
      this.reloadInterval = reloadInterval;
      this.inputTypes = inputs.getColumns().stream()
          .map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
      this.outputNames = outputs.getColumns().stream().map(Column::getName).toArray(String[]::new);
      this.outputTypes = outputs.getColumns().stream()
          .map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
    }

    /**
     * Open the model {@code path} names now, in a slot that re-resolves it every {@code
     * reload-interval} (default 30 s for a model directory; a binary's path without one is loaded
     * once, as before); every version is checked against the declared columns (one that does not
     * fit is refused). The slot's counters go to {@code metrics}.
     */
    ModelSlot<Opened> open(MetricGroup metrics) {
      Duration every = reloadInterval != null ? reloadInterval
          : ModelReference.isDirectory(path) ? ModelLifecycle.DEFAULT_RELOAD_INTERVAL : null;
      ModelSlot<Opened> slot = new ModelSlot<>(
          new ModelSlot.Config(path, sha256, trustedModels, every), this::open);
      if (metrics != null) {
        slot.registerMetrics(metrics);
      }
      return slot;
    }

    /** Check that the model's declared columns fit {@code model}, and score through it. */
    private Opened open(NativeModel model, String version) {
      String path = model.path();
      List<Field> modelInputs = model.inputSchema().getFields();
      if (modelInputs.size() != inputTypes.length) {
        throw new ModelException("model binary '" + path + "' has " + modelInputs.size()
            + " inputs, the CREATE MODEL statement declares " + inputTypes.length);
      }
      List<Field> modelOutputs = model.outputSchema().getFields();
      int[] index = new int[outputNames.length];
      for (int i = 0; i < outputNames.length; i++) {
        index[i] = -1;
        for (int j = 0; j < modelOutputs.size(); j++) {
          if (modelOutputs.get(j).getName().equals(outputNames[i])) {
            index[i] = j;
          }
        }
        if (index[i] < 0 && outputNames[i].equals(StreammlStreams.MODEL_VERSION)) {
          index[i] = VERSION; // a declared column the model does not have: the version's name
        } else if (index[i] < 0) {
          throw new ModelException("model binary '" + path + "' has no output '" + outputNames[i]
              + "' (declared in CREATE MODEL ... OUTPUT); its outputs are "
              + modelOutputs.stream().map(Field::getName).toList());
        }
      }
      return new Opened(new RowScorer(model, null), index, this);
    }
  }

  /** An output column that holds the version's name, not a model output. */
  static final int VERSION = -2;

  /** An open model with the output mapping. */
  static final class Opened implements AutoCloseable {
    final RowScorer scorer;
    private final int[] outputIndex;
    private final RowData.FieldGetter[] getters;
    /** Rows of DOUBLE inputs read without boxing (one thread: the sync function's). */
    private final double[] doubles;

    Opened(RowScorer scorer, int[] outputIndex, Shape shape) {
      this.scorer = scorer;
      this.outputIndex = outputIndex;
      this.getters = new RowData.FieldGetter[shape.inputTypes.length];
      boolean allDouble = getters.length > 0;
      for (int i = 0; i < getters.length; i++) {
        getters[i] = RowData.createFieldGetter(shape.inputTypes[i], i);
        allDouble &= shape.inputTypes[i].getTypeRoot() == LogicalTypeRoot.DOUBLE;
      }
      this.doubles = allDouble ? new double[getters.length] : null;
    }

    /** The row's inputs as doubles when every input is DOUBLE and none is null, else null (reused). */
    double[] doubles(RowData row) {
      if (doubles == null) {
        return null;
      }
      for (int i = 0; i < doubles.length; i++) {
        if (row.isNullAt(i)) {
          return null;
        }
        doubles[i] = row.getDouble(i);
      }
      return doubles;
    }

    Object[] features(RowData row) {
      Object[] values = new Object[getters.length];
      for (int i = 0; i < values.length; i++) {
        Object v = getters[i].getFieldOrNull(row);
        values[i] = v instanceof StringData s ? s.toString() : v;
      }
      return values;
    }

    /**
     * The output row; every column null when the row could not be scored, but a declared {@code
     * model_version}, which names {@code version} always.
     */
    RowData output(Object[] outputs, String version) {
      GenericRowData out = new GenericRowData(outputIndex.length);
      for (int i = 0; i < outputIndex.length; i++) {
        if (outputIndex[i] == VERSION) {
          out.setField(i, StringData.fromString(version));
        } else if (outputs != null) {
          Object v = outputs[outputIndex[i]];
          out.setField(i, v instanceof String s ? StringData.fromString(s) : v);
        }
      }
      return out;
    }

    @Override
    public void close() {
      scorer.close();
    }
  }

  /** {@code ML_PREDICT} without async: one native call per row, on the core's one-row path. */
  public static final class SyncPredict extends PredictFunction {
    private static final long serialVersionUID = 1L;
    private final Shape shape;
    private transient ModelSlot<Opened> slot;

    SyncPredict(Shape shape) {
      this.shape = shape;
    }

    @Override
    public void open(FunctionContext context) {
      slot = shape.open(context.getMetricGroup());
    }

    @Override
    public Collection<RowData> predict(RowData features) {
      try (ModelSlot.Version<Opened> version = slot.acquire()) { // a row is a batch
        Opened opened = version.prepared();
        double[] doubles = opened.doubles(features);
        RowScorer.Result result = doubles != null
            ? opened.scorer.scoreOneDoubles(doubles)
            : opened.scorer.scoreOne(opened.features(features));
        return List.of(opened.output(result.outputs(0), version.version()));
      }
    }

    @Override
    public void close() {
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
      batcher = new FutureBatcher<>(slot, opened -> opened.scorer, policy,
          (outputs, version) -> List.of(version.prepared().output(outputs, version.version())));
    }

    @Override
    public CompletableFuture<Collection<RowData>> asyncPredict(RowData features) {
      CompletableFuture<Collection<RowData>> result = new CompletableFuture<>();
      batcher.add(reader.features(features), result);
      return result;
    }

    @Override
    public void close() {
      if (batcher != null) {
        batcher.close();
      }
      if (slot != null) {
        slot.close();
      }
    }
  }
}
