package dev.streamml.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.apache.arrow.vector.types.pojo.Field;

/**
 * Rows of Java values in the encoding the native row scorer reads, and its outputs back into Java
 * values ({@code operators/jni/src/row.rs} describes both). This class only converts host types:
 * {@code Double}, {@code Float} and other {@code Number}s are floats; {@code Long}, {@code
 * Integer}, {@code Short}, {@code Byte} integers; {@code Boolean} a bool; a {@code CharSequence}
 * a string; a value of any other type is sent as its class name, which the core refuses in its
 * words. Every check (arity, absent, null, kinds, ranges) is the core's. Not thread-safe.
 */
final class RowCodec {
  private ByteBuffer in;
  /** Rows whose values are all Doubles, passed as they are ({@link #doubles}). */
  private double[] doubles = new double[0];

  RowCodec(int capacity) {
    in = ByteBuffer.allocateDirect(Math.max(capacity, 64)).order(ByteOrder.nativeOrder());
  }

  /** The encoded rows, from position 0 to {@link #length()}. */
  ByteBuffer buffer() {
    return in;
  }

  int length() {
    return in.position();
  }

  void clear() {
    in.clear();
  }

  /**
   * The values of {@code rows}, row after row, if every row has {@code width} values and all are
   * Doubles (then no encoding is needed); null otherwise. The array is reused and may be longer.
   */
  double[] doubles(List<Object[]> rows, int width) {
    int n = rows.size() * width;
    if (doubles.length < n) {
      doubles = new double[n];
    }
    int k = 0;
    for (Object[] row : rows) {
      if (row == null || row.length != width) {
        return null;
      }
      for (Object value : row) {
        if (!(value instanceof Double d)) {
          return null;
        }
        doubles[k++] = d;
      }
    }
    return doubles;
  }

  /** Append a row of values in the model's declared input order (null: no values). */
  void row(Object[] row) {
    room(4);
    if (row == null) {
      in.putInt(0);
      return;
    }
    in.putInt(row.length);
    for (Object value : row) {
      put(value);
    }
  }

  /** Append a row given by field name; an input it lacks is sent as absent. */
  void namedRow(List<Field> inputs, Map<String, ?> row) {
    room(4);
    in.putInt(inputs.size());
    for (Field f : inputs) {
      String name = f.getName();
      if (row != null && row.containsKey(name)) {
        put(row.get(name));
      } else {
        room(1);
        in.put((byte) 'A');
      }
    }
  }

  private void put(Object value) {
    room(9);
    if (value == null) {
      in.put((byte) 'N');
    } else if (value instanceof Double d) {
      in.put((byte) 'd').putDouble(d);
    } else if (value instanceof Long || value instanceof Integer || value instanceof Short
        || value instanceof Byte) {
      in.put((byte) 'j').putLong(((Number) value).longValue());
    } else if (value instanceof Number n) {
      in.put((byte) 'd').putDouble(n.doubleValue());
    } else if (value instanceof Boolean b) {
      in.put((byte) 'z').put((byte) (b ? 1 : 0));
    } else if (value instanceof CharSequence s) {
      bytes('s', s.toString().getBytes(StandardCharsets.UTF_8));
    } else {
      bytes('o', ("a " + value.getClass().getSimpleName()).getBytes(StandardCharsets.UTF_8));
    }
  }

  private void bytes(char tag, byte[] bytes) {
    room(5 + bytes.length);
    in.put((byte) tag).putInt(bytes.length).put(bytes);
  }

  /** Make room for {@code n} more bytes. */
  private void room(int n) {
    if (in.remaining() < n) {
      ByteBuffer bigger = ByteBuffer.allocateDirect(Math.max(2 * in.capacity(), in.position() + n))
          .order(ByteOrder.nativeOrder());
      in.flip();
      bigger.put(in);
      in = bigger;
    }
  }

  /**
   * Read {@code count} outputs at {@code b}'s position: Double, Float, Long, Integer, Short, Byte,
   * Boolean, String, null (unsigned integers as Long).
   */
  static Object[] outputs(ByteBuffer b, int count) {
    Object[] values = new Object[count];
    for (int i = 0; i < count; i++) {
      byte tag = b.get();
      values[i] = switch (tag) {
        case 'N' -> null;
        case 'g' -> b.getDouble();
        case 'f' -> b.getFloat();
        case 'l', 'L' -> b.getLong();
        case 'i' -> b.getInt();
        case 'I' -> Integer.toUnsignedLong(b.getInt());
        case 's' -> b.getShort();
        case 'S' -> (long) Short.toUnsignedInt(b.getShort());
        case 'c' -> b.get();
        case 'C' -> (long) Byte.toUnsignedInt(b.get());
        case 'b' -> b.get() != 0;
        case 'u' -> string(b);
        default -> throw new ModelException("the native row scorer wrote output tag " + tag
            + "; the JNI library and the Java classes are from different builds");
      };
    }
    return values;
  }

  /** An {@code i32} length and UTF-8 bytes at {@code b}'s position. */
  static String string(ByteBuffer b) {
    byte[] text = new byte[b.getInt()];
    b.get(text);
    return new String(text, StandardCharsets.UTF_8);
  }
}
