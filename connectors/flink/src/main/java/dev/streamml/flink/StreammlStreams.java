package dev.streamml.flink;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.types.Row;
import org.apache.flink.util.OutputTag;

/** DataStream operators of streamml, in the Bytewax style: step id first, then the stream. */
public final class StreammlStreams {
  private StreammlStreams() {}

  /**
   * Score {@code stream} with the model binary at {@code modelPath} in micro-batches by {@code
   * policy}, the buffer in checkpointed state ({@link BatchingPredictOperator}). The stream's rows
   * must be a {@link RowTypeInfo} with a field named as each model input; the output rows are the
   * input fields, the model's outputs and {@code error}. The model is opened here once to read its
   * schema, so the path must be readable by the client as well as the task managers.
   */
  public static SingleOutputStreamOperator<Row> predict(
      String stepId, DataStream<Row> stream, String modelPath, BatchPolicy policy) {
    return build(stepId, stream, ModelLifecycle.fixed(modelPath), policy, BatchingPredictOperator::new).oks();
  }

  /** How {@link #predict} makes its operator from a binary's path (tests give a subclass). */
  interface OperatorMaker {
    BatchingPredictOperator make(
        String modelPath, BatchPolicy policy, RowTypeInfo inputType, int[] featureIndexes, int outputCount);
  }

  /** {@link #predict(String, DataStream, String, BatchPolicy)} with the operator {@code maker} makes. */
  static SingleOutputStreamOperator<Row> predict(
      String stepId, DataStream<Row> stream, String modelPath, BatchPolicy policy, OperatorMaker maker) {
    return build(stepId, stream, ModelLifecycle.fixed(modelPath), policy,
        (step, p, inputType, features, outputCount, idIndex) -> maker.make(modelPath, p, inputType, features, outputCount))
        .oks();
  }

  /**
   * The streams of a step scored from a model reference: {@code oks}, the serving side's rows
   * (each ending with {@code model_version}); {@code shadow}, every version's rows for every event
   * (the champion's and each challenger's, with the same columns), null without challengers;
   * {@code shadowTag}, the side output {@code shadow} reads.
   */
  public record Predictions(
      SingleOutputStreamOperator<Row> oks, DataStream<Row> shadow, OutputTag<Row> shadowTag) {}

  /**
   * Score {@code stream} with the model a reference names now ({@link ModelLifecycle}): the step
   * re-resolves it on an interval and swaps a new version in between batches (a batch is scored
   * wholly by one version, named in each row's {@code model_version}); a version that does not
   * load or verify is refused and the old one keeps serving (the counters {@code modelSwaps},
   * {@code modelRefused}, {@code modelResolveErrors} and the gauge {@code modelVersion} in the
   * operator's metric group). Challengers score every batch in shadow ({@link Predictions#shadow}).
   * The reference is resolved here once to read the model's schema.
   */
  public static Predictions predict(
      String stepId, DataStream<Row> stream, ModelLifecycle models, BatchPolicy policy) {
    return build(stepId, stream, models, policy, BatchingPredictOperator::new);
  }

  /** How {@link #build} makes its operator. */
  private interface LifecycleMaker {
    BatchingPredictOperator make(ModelLifecycle step, BatchPolicy policy, RowTypeInfo inputType,
        int[] featureIndexes, int outputCount, int idIndex);
  }

  private static Predictions build(String stepId, DataStream<Row> stream, ModelLifecycle models,
      BatchPolicy policy, LifecycleMaker maker) {
    if (!(stream.getType() instanceof RowTypeInfo inputType)) {
      throw new ModelException(
          "step '" + stepId + "': the stream's type is " + stream.getType()
              + ", expected rows with named fields (RowTypeInfo)");
    }
    String modelPath = models.champion().reference();
    List<String> names = Arrays.asList(inputType.getFieldNames());
    List<Field> inputs;
    List<Field> outputs;
    ModelSlot.Config once = new ModelSlot.Config(
        modelPath, models.champion().sha256(), models.champion().trustedModels(), null);
    try (ModelSlot<Void> model = new ModelSlot<>(once, null);
        ModelSlot.Version<Void> version = model.acquire()) {
      inputs = version.model().inputSchema().getFields();
      outputs = version.model().outputSchema().getFields();
    }
    int[] features = new int[inputs.size()];
    for (int i = 0; i < inputs.size(); i++) {
      features[i] = names.indexOf(inputs.get(i).getName());
      if (features[i] < 0) {
        throw new ModelException(
            "step '" + stepId + "': the stream has no field '" + inputs.get(i).getName()
                + "', an input of model binary '" + modelPath + "'; its fields are " + names);
      }
    }
    List<TypeInformation<?>> types = new ArrayList<>(Arrays.asList(inputType.getFieldTypes()));
    List<String> outNames = new ArrayList<>(names);
    for (Field f : outputs) {
      types.add(flinkType(f, modelPath));
      outNames.add(f.getName());
    }
    types.add(Types.STRING);
    outNames.add("error");
    if (models.versionColumn()) {
      types.add(Types.STRING);
      outNames.add(MODEL_VERSION);
    }
    int idIndex = -1;
    if (models.canaryFraction() > 0) {
      idIndex = names.indexOf(models.idField());
      if (idIndex < 0) {
        throw new ModelException("step '" + stepId + "': the stream has no field '" + models.idField()
            + "' (the canary's event id); its fields are " + names);
      }
      types.add(Types.STRING);
      outNames.add(SERVED_BY);
    }
    RowTypeInfo outType = new RowTypeInfo(
        types.toArray(new TypeInformation<?>[0]), outNames.toArray(new String[0]));
    ModelLifecycle step = models.forStep(stepId, outType, inputs, outputs);
    SingleOutputStreamOperator<Row> oks = stream
        .transform(stepId, outType,
            maker.make(step, policy, inputType, features, outputs.size(), idIndex))
        .uid(stepId);
    OutputTag<Row> tag = step.shadowTag();
    return new Predictions(oks, tag == null ? null : oks.getSideOutput(tag), tag);
  }

  /** The column naming the version that scored a row. */
  public static final String MODEL_VERSION = "model_version";

  /** The column saying which side served a row when a canary is set: champion or canary. */
  public static final String SERVED_BY = "served_by";

  static TypeInformation<?> flinkType(Field field, String modelPath) {
    ArrowType type = field.getType();
    if (type instanceof ArrowType.FloatingPoint fp) {
      return fp.getPrecision() == FloatingPointPrecision.DOUBLE ? Types.DOUBLE : Types.FLOAT;
    }
    if (type instanceof ArrowType.Int i) {
      return switch (i.getBitWidth()) {
        case 64 -> Types.LONG;
        case 32 -> Types.INT;
        case 16 -> Types.SHORT;
        default -> Types.BYTE;
      };
    }
    if (type instanceof ArrowType.Bool) {
      return Types.BOOLEAN;
    }
    if (type instanceof ArrowType.Utf8) {
      return Types.STRING;
    }
    throw new ModelException(
        "model binary '" + modelPath + "' output '" + field.getName() + "' has type " + type
            + ", which the DataStream operator does not map to a Flink type");
  }
}
