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
    return predict(stepId, stream, modelPath, policy, BatchingPredictOperator::new);
  }

  /** How {@link #predict} makes its operator (tests give a subclass). */
  interface OperatorMaker {
    BatchingPredictOperator make(
        String modelPath, BatchPolicy policy, RowTypeInfo inputType, int[] featureIndexes, int outputCount);
  }

  static SingleOutputStreamOperator<Row> predict(
      String stepId, DataStream<Row> stream, String modelPath, BatchPolicy policy, OperatorMaker maker) {
    if (!(stream.getType() instanceof RowTypeInfo inputType)) {
      throw new ModelException(
          "step '" + stepId + "': the stream's type is " + stream.getType()
              + ", expected rows with named fields (RowTypeInfo)");
    }
    List<String> names = Arrays.asList(inputType.getFieldNames());
    List<Field> inputs;
    List<Field> outputs;
    try (NativeModel model = NativeModel.load(modelPath)) {
      inputs = model.inputSchema().getFields();
      outputs = model.outputSchema().getFields();
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
    RowTypeInfo outType = new RowTypeInfo(
        types.toArray(new TypeInformation<?>[0]), outNames.toArray(new String[0]));
    return stream
        .transform(stepId, outType,
            maker.make(modelPath, policy, inputType, features, outputs.size()))
        .uid(stepId);
  }

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
