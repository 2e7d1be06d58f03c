package dev.streamml.flink;

import java.util.Collection;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.arrow.vector.types.pojo.Field;
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
  private final BatchPolicy policy;
  private final ResolvedSchema inputs;
  private final ResolvedSchema outputs;

  StreammlModelProvider(String path, String sha256, String trustedModels, BatchPolicy policy,
      ResolvedSchema inputs, ResolvedSchema outputs) {
    this.path = path;
    this.sha256 = sha256;
    this.trustedModels = trustedModels;
    this.policy = policy;
    this.inputs = inputs;
    this.outputs = outputs;
  }

  @Override
  public PredictFunction createPredictFunction(ModelProvider.Context context) {
    return new SyncPredict(new Shape(path, sha256, trustedModels, inputs, outputs));
  }

  @Override
  public AsyncPredictFunction createAsyncPredictFunction(ModelProvider.Context context) {
    return new AsyncPredict(new Shape(path, sha256, trustedModels, inputs, outputs), policy);
  }

  @Override
  public ModelProvider copy() {
    return new StreammlModelProvider(path, sha256, trustedModels, policy, inputs, outputs);
  }

  /** The model, and how SQL rows map to its inputs and outputs. */
  static final class Shape implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    final String path;
    final String sha256;
    final String trustedModels;
    final LogicalType[] inputTypes;
    final String[] outputNames;
    final LogicalType[] outputTypes;

    Shape(String path, String sha256, String trustedModels, ResolvedSchema inputs, ResolvedSchema outputs) {
      this.path = path;
      this.sha256 = sha256;
      this.trustedModels = trustedModels;
      this.inputTypes = inputs.getColumns().stream()
          .map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
      this.outputNames = outputs.getColumns().stream().map(Column::getName).toArray(String[]::new);
      this.outputTypes = outputs.getColumns().stream()
          .map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
    }

    /** Open the binary and check that the model's declared columns fit it. */
    Opened open() {
      NativeModel model = NativeModel.load(path, sha256, trustedModels);
      try {
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
          if (index[i] < 0) {
            throw new ModelException("model binary '" + path + "' has no output '" + outputNames[i]
                + "' (declared in CREATE MODEL ... OUTPUT); its outputs are "
                + modelOutputs.stream().map(Field::getName).toList());
          }
        }
        return new Opened(new RowScorer(model, null), index, this);
      } catch (RuntimeException e) {
        model.close();
        throw e;
      }
    }
  }

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

    /** The output row; every column null when the row could not be scored. */
    RowData output(Object[] outputs) {
      GenericRowData out = new GenericRowData(outputIndex.length);
      if (outputs != null) {
        for (int i = 0; i < outputIndex.length; i++) {
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
    private transient Opened opened;

    SyncPredict(Shape shape) {
      this.shape = shape;
    }

    @Override
    public void open(FunctionContext context) {
      opened = shape.open();
    }

    @Override
    public Collection<RowData> predict(RowData features) {
      double[] doubles = opened.doubles(features);
      RowScorer.Result result = doubles != null
          ? opened.scorer.scoreOneDoubles(doubles)
          : opened.scorer.scoreOne(opened.features(features));
      return List.of(opened.output(result.outputs(0)));
    }

    @Override
    public void close() {
      if (opened != null) {
        opened.close();
      }
    }
  }

  /** {@code ML_PREDICT} with {@code 'async' = 'true'}: concurrent rows scored in micro-batches. */
  public static final class AsyncPredict extends AsyncPredictFunction {
    private static final long serialVersionUID = 1L;
    private final Shape shape;
    private final BatchPolicy policy;
    private transient Opened opened;
    private transient FutureBatcher<Collection<RowData>> batcher;

    AsyncPredict(Shape shape, BatchPolicy policy) {
      this.shape = shape;
      this.policy = policy;
    }

    @Override
    public void open(FunctionContext context) {
      opened = shape.open();
      batcher = new FutureBatcher<>(opened.scorer, policy, outputs -> List.of(opened.output(outputs)));
    }

    @Override
    public CompletableFuture<Collection<RowData>> asyncPredict(RowData features) {
      CompletableFuture<Collection<RowData>> result = new CompletableFuture<>();
      batcher.add(opened.features(features), result);
      return result;
    }

    @Override
    public void close() {
      if (batcher != null) {
        batcher.close();
      }
      if (opened != null) {
        opened.close();
      }
    }
  }
}
