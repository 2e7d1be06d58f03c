package dev.streamml.flink;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BitVectorHelper;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.FixedWidthVector;
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;

/**
 * Scores rows of Java values (one {@code Object[]} per row, values in the model's declared input
 * order) in one native call per batch, and reads one output column back.
 *
 * <p>The rule for rows that cannot be scored: a row with the wrong number of values, a null for an
 * input the model declares non-nullable, or a value that is not a number (or boolean, for a bool
 * input) is not sent to the model; its result is {@code null} and {@link Result#error(int)} says
 * why. The other rows of the batch are scored.
 *
 * <p>Rows given by field name ({@link #scoreNamed}) follow the rule of every streamml host: an input
 * field the row lacks is an error for that row ({@link MissingFields#absent}), unless the scorer was
 * made with {@link MissingFields#NULL}; an explicit null is a missing value where the input is
 * nullable; fields that are not inputs are ignored.
 */
public final class RowScorer implements AutoCloseable {
  private final NativeModel model;
  private final List<Field> inputs;
  /** Per input, how a Java value goes into its vector (the {@code KIND_} constants). */
  private final int[] kinds;
  private final boolean[] nullable;
  private final int outputIndex;
  private final MissingFields missing;

  private static final int KIND_F64 = 0;
  private static final int KIND_F32 = 1;
  private static final int KIND_I64 = 2;
  private static final int KIND_I32 = 3;
  private static final int KIND_I16 = 4;
  private static final int KIND_I8 = 5;
  private static final int KIND_BOOL = 6;
  private static final int KIND_OTHER = 7;

  /** Score through {@code model}, reading the output column {@code output} (null: the first). */
  public RowScorer(NativeModel model, String output) {
    this(model, output, MissingFields.ERROR);
  }

  /**
   * Score through {@code model}, reading the output column {@code output} (null: the first); an input
   * field absent from a row given by name is as {@code missing} says.
   */
  public RowScorer(NativeModel model, String output, MissingFields missing) {
    this.model = model;
    this.missing = missing;
    this.inputs = model.inputSchema().getFields();
    this.kinds = new int[inputs.size()];
    this.nullable = new boolean[inputs.size()];
    for (int c = 0; c < kinds.length; c++) {
      kinds[c] = kind(inputs.get(c).getType());
      nullable[c] = inputs.get(c).isNullable();
    }
    List<Field> outputs = model.outputSchema().getFields();
    int index = 0;
    if (output != null) {
      index = -1;
      for (int i = 0; i < outputs.size(); i++) {
        if (outputs.get(i).getName().equals(output)) {
          index = i;
        }
      }
      if (index < 0) {
        throw new ModelException(
            "model binary '" + model.path() + "' has no output '" + output + "'; its outputs are "
                + names(outputs));
      }
    }
    this.outputIndex = index;
  }

  /** Load the binary at {@code path} and score through it. */
  public static RowScorer open(String path, String output) {
    NativeModel model = NativeModel.load(path);
    try {
      return new RowScorer(model, output);
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
  }

  public NativeModel model() {
    return model;
  }

  /** Number of values a row must have. */
  public int arity() {
    return inputs.size();
  }

  /** The results of one batch: a value or an error per row. */
  public static final class Result {
    private final Object[][] outputs;
    private final String[] errors;
    private final int selected;

    Result(Object[][] outputs, String[] errors, int selected) {
      this.outputs = outputs;
      this.errors = errors;
      this.selected = selected;
    }

    /** The chosen output of row {@code i} (a Double, Long, Boolean...), null when it has an error. */
    public Object value(int i) {
      return outputs[i] == null ? null : outputs[i][selected];
    }

    /** Every output of row {@code i}, in declared order; null when it has an error. */
    public Object[] outputs(int i) {
      return outputs[i];
    }

    /** Why row {@code i} was not scored, or null. */
    public String error(int i) {
      return errors[i];
    }

    public int size() {
      return outputs.length;
    }
  }

  /** Score {@code rows} in one native call (none when no row is valid). */
  public Result score(List<Object[]> rows) {
    int n = rows.size();
    Object[][] values = new Object[n][];
    String[] errors = new String[n];
    int[] valid = new int[n];
    int count = 0;
    for (int i = 0; i < n; i++) {
      String error = check(rows.get(i));
      if (error == null) {
        valid[count++] = i;
      } else {
        errors[i] = error;
      }
    }
    if (count == 0) {
      return new Result(values, errors, outputIndex);
    }
    try (VectorSchemaRoot batch = VectorSchemaRoot.create(model.inputSchema(), model.allocator())) {
      fill(batch, rows, valid, count);
      batch.setRowCount(count);
      try (VectorSchemaRoot out = model.predict(batch)) {
        int columns = out.getFieldVectors().size();
        for (int r = 0; r < count; r++) {
          values[valid[r]] = new Object[columns];
        }
        for (int c = 0; c < columns; c++) {
          ValueVector column = out.getVector(c);
          for (int r = 0; r < count; r++) {
            Object v = column.getObject(r);
            values[valid[r]][c] = v instanceof org.apache.arrow.vector.util.Text ? v.toString() : v;
          }
        }
      }
    }
    return new Result(values, errors, outputIndex);
  }

  /**
   * Score rows given by field name in one native call: each map's input fields are put in declared
   * order (fields that are not inputs are ignored); a row that lacks an input field is refused
   * ({@link MissingFields#absent}) unless this scorer reads absent fields as null.
   */
  public Result scoreNamed(List<? extends Map<String, ?>> rows) {
    int n = rows.size();
    List<Object[]> positional = new ArrayList<>(n);
    String[] absent = new String[n];
    for (int i = 0; i < n; i++) {
      Map<String, ?> row = rows.get(i);
      Object[] values = new Object[inputs.size()];
      for (int c = 0; c < values.length && absent[i] == null; c++) {
        String name = inputs.get(c).getName();
        if (row != null && row.containsKey(name)) {
          values[c] = row.get(name);
        } else if (missing == MissingFields.ERROR) {
          absent[i] = MissingFields.absent(name);
        }
      }
      positional.add(absent[i] == null ? values : null);
    }
    Result result = score(positional);
    for (int i = 0; i < n; i++) {
      if (absent[i] != null) {
        result.errors[i] = absent[i];
      }
    }
    return result;
  }

  /** Why a row cannot be scored, or null when it can. */
  private String check(Object[] row) {
    if (row == null || row.length != kinds.length) {
      return "expected " + kinds.length + " values in the model's input order "
          + names(inputs) + ", got " + (row == null ? "null" : String.valueOf(row.length));
    }
    for (int c = 0; c < row.length; c++) {
      Object value = row[c];
      if (value == null) {
        if (!nullable[c]) {
          return "input '" + inputs.get(c).getName() + "' is null; the model declares it non-nullable";
        }
      } else if (kinds[c] == KIND_BOOL ? !(value instanceof Boolean) : !(value instanceof Number)) {
        return "input '" + inputs.get(c).getName() + "' is a " + value.getClass().getSimpleName()
            + ", expected a " + inputs.get(c).getType();
      }
    }
    return null;
  }

  /** How values of {@code type} are set (KIND_OTHER: not by these functions). */
  private static int kind(ArrowType type) {
    if (type instanceof ArrowType.FloatingPoint f) {
      return f.getPrecision() == FloatingPointPrecision.DOUBLE ? KIND_F64
          : f.getPrecision() == FloatingPointPrecision.SINGLE ? KIND_F32 : KIND_OTHER;
    }
    if (type instanceof ArrowType.Int i && i.getIsSigned()) {
      return switch (i.getBitWidth()) {
        case 64 -> KIND_I64;
        case 32 -> KIND_I32;
        case 16 -> KIND_I16;
        case 8 -> KIND_I8;
        default -> KIND_OTHER;
      };
    }
    return type instanceof ArrowType.Bool ? KIND_BOOL : KIND_OTHER;
  }

  /**
   * Fill the batch's vectors with the valid rows, row by row (each row's values are read once, in
   * the order they lie in memory), writing into the vectors' buffers directly: every value is
   * first marked valid, and a null clears its bit.
   */
  private void fill(VectorSchemaRoot batch, List<Object[]> rows, int[] valid, int count) {
    int columns = kinds.length;
    ArrowBuf[] data = new ArrowBuf[columns];
    ArrowBuf[] validity = new ArrowBuf[columns];
    for (int c = 0; c < columns; c++) {
      FieldVector vector = batch.getVector(c);
      if (kinds[c] == KIND_OTHER) {
        throw new ModelException("input '" + vector.getName() + "' has type " + vector.getField().getType()
            + ", which the Flink functions do not fill; score it with NativeModel.predict");
      }
      ((FixedWidthVector) vector).allocateNew(count);
      data[c] = vector.getDataBuffer();
      validity[c] = vector.getValidityBuffer();
      validity[c].setOne(0, BitVectorHelper.getValidityBufferSize(count));
    }
    for (int r = 0; r < count; r++) {
      Object[] row = rows.get(valid[r]);
      long at = r;
      for (int c = 0; c < columns; c++) {
        Object value = row[c];
        if (value == null) {
          BitVectorHelper.unsetBit(validity[c], r);
          continue;
        }
        ArrowBuf buf = data[c];
        switch (kinds[c]) {
          case KIND_F64 -> buf.setDouble(at * Double.BYTES, ((Number) value).doubleValue());
          case KIND_F32 -> buf.setFloat(at * Float.BYTES, ((Number) value).floatValue());
          case KIND_I64 -> buf.setLong(at * Long.BYTES, ((Number) value).longValue());
          case KIND_I32 -> buf.setInt(at * Integer.BYTES, ((Number) value).intValue());
          case KIND_I16 -> buf.setShort(at * Short.BYTES, ((Number) value).shortValue());
          case KIND_I8 -> buf.setByte(at, ((Number) value).byteValue());
          default -> BitVectorHelper.setValidityBit(buf, r, ((Boolean) value) ? 1 : 0); // KIND_BOOL
        }
      }
    }
  }

  private static String names(List<Field> fields) {
    List<String> names = new ArrayList<>();
    for (Field f : fields) {
      names.add(f.getName());
    }
    return Arrays.toString(names.toArray());
  }

  @Override
  public void close() {
    model.close();
  }
}
