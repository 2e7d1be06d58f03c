package dev.streamml.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.arrow.vector.types.pojo.Field;

/**
 * Scores rows of Java values (one {@code Object[]} per row, values in the model's declared input
 * order): a batch in one native call ({@link #score}), or one row on the core's one-row path
 * ({@link #scoreOne}); reads one output column back, or all of them.
 *
 * <p>Rows are checked by the core, with the rules and messages of every streamml host (the table of
 * cases {@code tests/fixtures/row_checks.json} runs in pytest and JUnit): a row with the wrong number
 * of values, a null for an input the model declares non-nullable, a value of the wrong kind or an
 * integer out of its input's range is not sent to the model; its result is {@code null} and {@link
 * Result#error(int)} says why. The other rows of the batch are scored. This class only converts
 * Java values ({@link RowCodec}); no Arrow Java objects are made per row or per batch.
 *
 * <p>Rows given by field name ({@link #scoreNamed}) follow the rule of every streamml host: an input
 * field the row lacks is an error for that row ({@link MissingFields#absent}), unless the scorer was
 * made with {@link MissingFields#NULL}; an explicit null is a missing value where the input is
 * nullable; fields that are not inputs are ignored.
 */
public final class RowScorer implements AutoCloseable {
  private final NativeModel model;
  private final List<Field> inputs;
  private final int outputs;
  private final int outputIndex;
  private final MissingFields missing;
  /** The core's one-row path, opened on first use; guarded by {@code this}. */
  private NativeRow row;
  /** Each thread's buffer of encoded rows for {@link #score}. */
  private final ThreadLocal<RowCodec> codecs;

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
    int width = 16 * inputs.size();
    this.codecs = ThreadLocal.withInitial(() -> new RowCodec(64 * width));
    List<Field> outputs = model.outputSchema().getFields();
    this.outputs = outputs.size();
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

  /**
   * Score one row (values in the model's declared input order) on the core's one-row path: the
   * core checks it (the same rules and messages as every streamml host) and the binary reads it in
   * place; no Arrow Java objects are made. A refused row has a null value and {@link
   * Result#error(int)} says why. Calls are serialised: give each thread its own scorer for speed.
   */
  public synchronized Result scoreOne(Object[] values) {
    NativeRow r = row();
    Object[] outputs = r.score(values);
    return new Result(new Object[][] {outputs}, new String[] {outputs == null ? r.error() : null}, outputIndex);
  }

  /**
   * {@link #scoreOne} for a row of doubles, none null, in the model's declared input order (all of
   * {@code values}): the same checks and outcome as the same values as Doubles, without boxing.
   */
  public synchronized Result scoreOneDoubles(double[] values) {
    NativeRow r = row();
    Object[] outputs = r.scoreDoubles(values);
    return new Result(new Object[][] {outputs}, new String[] {outputs == null ? r.error() : null}, outputIndex);
  }

  /**
   * Score one row given by field name on the core's one-row path (see {@link #scoreOne}): fields
   * that are not inputs are ignored, an absent input is as this scorer's {@link MissingFields} says.
   */
  public synchronized Result scoreOneNamed(Map<String, ?> values) {
    NativeRow r = row();
    Object[] outputs = r.scoreNamed(values);
    return new Result(new Object[][] {outputs}, new String[] {outputs == null ? r.error() : null}, outputIndex);
  }

  /** Rows {@link #scoreOne} passed as a {@code double[]} (for tests). */
  synchronized long rowsPassedAsDoubles() {
    return row == null ? 0 : row.doubleRows();
  }

  private NativeRow row() {
    if (row == null) {
      row = new NativeRow(model, missing);
    }
    return row;
  }

  /**
   * Score {@code rows} in one native call: the core checks each row (the same rules and messages
   * as every streamml host), scores the good ones as one batch and names why each other one was
   * refused. The rows are encoded into a direct buffer this thread reuses, or, when every row holds
   * one Double per input, copied into a {@code double[]} it reuses; no Arrow Java objects.
   */
  public Result score(List<Object[]> rows) {
    RowCodec codec = codecs.get();
    int width = inputs.size();
    double[] doubles = rows.isEmpty() ? null : codec.doubles(rows, width);
    if (doubles != null) {
      // Every row all Doubles: passed as they are, the core checks and answers alike.
      return answer(model.scoreRowsDoubles(doubles, rows.size(), width), rows.size());
    }
    codec.clear();
    for (Object[] row : rows) {
      codec.row(row);
    }
    return scoreEncoded(codec, rows.size());
  }

  /**
   * {@link #score} for {@code rows} rows of doubles, none null, row after row in {@code values} (the
   * model's declared input order; the array may be longer): the same checks and outcome as the same
   * values as Doubles, without a box or an {@code Object[]} per row.
   */
  Result scoreDoubles(double[] values, int rows) {
    return answer(model.scoreRowsDoubles(values, rows, inputs.size()), rows);
  }

  /**
   * Score rows given by field name in one native call: each map's input fields are read in
   * declared order (fields that are not inputs are ignored); a row that lacks an input field is
   * refused ({@link MissingFields#absent}) unless this scorer reads absent fields as null.
   */
  public Result scoreNamed(List<? extends Map<String, ?>> rows) {
    RowCodec codec = codecs.get();
    codec.clear();
    for (Map<String, ?> row : rows) {
      codec.namedRow(inputs, row);
    }
    return scoreEncoded(codec, rows.size());
  }

  private Result scoreEncoded(RowCodec codec, int n) {
    return answer(model.scoreRows(codec.buffer(), codec.length(), n, missing == MissingFields.NULL), n);
  }

  /** Read the core's answer for {@code n} rows (see {@code operators/jni/src/row.rs}). */
  private Result answer(byte[] answer, int n) {
    ByteBuffer b = ByteBuffer.wrap(answer).order(ByteOrder.nativeOrder());
    if (b.get() == 1) {
      model.countPredictCall();
    }
    Object[][] values = new Object[n][];
    String[] errors = new String[n];
    for (int i = 0; i < n; i++) {
      if (b.get() == 'O') {
        values[i] = RowCodec.outputs(b, outputs);
      } else {
        errors[i] = RowCodec.string(b);
      }
    }
    return new Result(values, errors, outputIndex);
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
    synchronized (this) {
      if (row != null) {
        row.close();
        row = null;
      }
    }
    model.close();
  }
}
