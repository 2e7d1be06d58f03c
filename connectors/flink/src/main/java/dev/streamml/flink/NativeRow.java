package dev.streamml.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.apache.arrow.vector.types.pojo.Field;

/**
 * One row at a time through the core's one-row path: the row's values are encoded ({@link
 * RowCodec}) into a direct buffer this object reuses, checked and scored in native code (the core's
 * row checks and messages; the model binary reads a reusable one-row array in place), and the
 * outputs read back from another reused buffer; a row whose values are all Doubles is passed as a
 * {@code double[]} instead (the core checks and scores it alike). No Arrow Java objects per row. Not
 * thread-safe: one per thread.
 */
final class NativeRow implements AutoCloseable {
  private final NativeModel model;
  private final List<Field> inputs;
  private final int outputs;
  private final RowCodec codec;
  /** A row whose values are all Doubles, passed as they are (up to the model's arity). */
  private final double[] doubles;
  private long doubleRows;
  private long handle;
  private ByteBuffer out;
  private String error;

  NativeRow(NativeModel model, MissingFields missing) {
    this.model = model;
    this.inputs = model.inputSchema().getFields();
    this.outputs = model.outputSchema().getFields().size();
    this.codec = new RowCodec(16 * inputs.size());
    this.doubles = new double[inputs.size()];
    this.out = ByteBuffer.allocateDirect(64 + 16 * outputs).order(ByteOrder.nativeOrder());
    this.handle = model.openRow(missing == MissingFields.NULL);
  }

  /**
   * Score a row of values in the model's declared input order: its outputs in declared order, or
   * null when the row was refused ({@link #error()} says why).
   */
  Object[] score(Object[] row) {
    if (row != null && row.length <= doubles.length && copyDoubles(row)) {
      doubleRows++;
      return call(doubles, row.length);
    }
    codec.clear();
    codec.row(row);
    return call(null, -1);
  }

  /** Score a row of doubles, none null (all of {@code values}): as {@link #score} of them boxed. */
  Object[] scoreDoubles(double[] values) {
    doubleRows++;
    return call(values, values.length);
  }

  /** Copy {@code row} into {@link #doubles} if every value is a Double (no encoding needed). */
  private boolean copyDoubles(Object[] row) {
    for (int i = 0; i < row.length; i++) {
      if (!(row[i] instanceof Double d)) {
        return false;
      }
      doubles[i] = d;
    }
    return true;
  }

  /**
   * Score a row given by field name (fields that are not inputs are ignored; an absent input is as
   * this row scorer's {@link MissingFields} says).
   */
  Object[] scoreNamed(Map<String, ?> row) {
    codec.clear();
    codec.namedRow(inputs, row);
    return call(null, -1);
  }

  /** Rows passed as doubles (for tests). */
  long doubleRows() {
    return doubleRows;
  }

  /** Why the last refused row was refused. */
  String error() {
    return error;
  }

  /** Score the first {@code values} of {@code row}, or (-1) the row in {@link #codec}. */
  private Object[] call(double[] row, int values) {
    if (handle == 0) {
      throw new ModelException("model binary '" + model.path() + "': the row scorer is closed");
    }
    int n = scoreNative(row, values);
    if (n < -1) {
      out = ByteBuffer.allocateDirect(-n).order(ByteOrder.nativeOrder());
      n = scoreNative(row, values);
    }
    if (n == -1) {
      error = NativeBridge.rowError(handle);
      return null;
    }
    model.countPredictCall();
    error = null;
    out.clear();
    return RowCodec.outputs(out, outputs);
  }

  private int scoreNative(double[] row, int values) {
    return values < 0
        ? NativeBridge.rowScore(handle, codec.buffer(), codec.length(), out)
        : NativeBridge.rowScoreDoubles(handle, row, values, out);
  }

  @Override
  public void close() {
    long h = handle;
    handle = 0;
    if (h != 0) {
      NativeBridge.rowRelease(h);
    }
  }
}
