package dev.streamml.flink;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.SmallIntVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Field;

/**
 * Scores rows of Java values (one {@code Object[]} per row, values in the model's declared input
 * order) in one native call per batch, and reads one output column back.
 *
 * <p>The rule for rows that cannot be scored: a row with the wrong number of values, a null for an
 * input the model declares non-nullable, or a value that is not a number (or boolean, for a bool
 * input) is not sent to the model; its result is {@code null} and {@link Result#error(int)} says
 * why. The other rows of the batch are scored.
 */
public final class RowScorer implements AutoCloseable {
  private final NativeModel model;
  private final List<Field> inputs;
  private final int outputIndex;

  /** Score through {@code model}, reading the output column {@code output} (null: the first). */
  public RowScorer(NativeModel model, String output) {
    this.model = model;
    this.inputs = model.inputSchema().getFields();
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
      batch.allocateNew();
      for (int c = 0; c < inputs.size(); c++) {
        FieldVector vector = batch.getVector(c);
        for (int r = 0; r < count; r++) {
          set(vector, r, rows.get(valid[r])[c]);
        }
        vector.setValueCount(count);
      }
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

  /** Why a row cannot be scored, or null when it can. */
  private String check(Object[] row) {
    if (row == null || row.length != inputs.size()) {
      return "expected " + inputs.size() + " values in the model's input order "
          + names(inputs) + ", got " + (row == null ? "null" : String.valueOf(row.length));
    }
    for (int c = 0; c < row.length; c++) {
      Field field = inputs.get(c);
      Object value = row[c];
      if (value == null) {
        if (!field.isNullable()) {
          return "input '" + field.getName() + "' is null; the model declares it non-nullable";
        }
      } else if (field.getType().getTypeID() == org.apache.arrow.vector.types.pojo.ArrowType.ArrowTypeID.Bool
          ? !(value instanceof Boolean)
          : !(value instanceof Number)) {
        return "input '" + field.getName() + "' is a " + value.getClass().getSimpleName()
            + ", expected a " + field.getType();
      }
    }
    return null;
  }

  private static void set(FieldVector vector, int row, Object value) {
    if (value == null) {
      vector.setNull(row);
    } else if (vector instanceof Float8Vector v) {
      v.set(row, ((Number) value).doubleValue());
    } else if (vector instanceof Float4Vector v) {
      v.set(row, ((Number) value).floatValue());
    } else if (vector instanceof BigIntVector v) {
      v.set(row, ((Number) value).longValue());
    } else if (vector instanceof IntVector v) {
      v.set(row, ((Number) value).intValue());
    } else if (vector instanceof SmallIntVector v) {
      v.set(row, ((Number) value).shortValue());
    } else if (vector instanceof TinyIntVector v) {
      v.set(row, ((Number) value).byteValue());
    } else if (vector instanceof BitVector v) {
      v.set(row, ((Boolean) value) ? 1 : 0);
    } else {
      throw new ModelException(
          "input '" + vector.getName() + "' has type " + vector.getField().getType()
              + ", which the Flink functions do not fill; score it with NativeModel.predict");
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
