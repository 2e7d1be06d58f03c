package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.apache.arrow.c.ArrowArray;
import org.apache.arrow.c.ArrowSchema;
import org.apache.arrow.c.Data;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.junit.jupiter.api.Test;

/**
 * An input whose C Data Interface lengths lie (what a buggy exporter could hand over) is a {@link
 * ModelException} naming the lie, never a crash of the JVM: the shim checks the array before it is
 * read and validates it in full when it imports it.
 */
class LyingInputTest {
  private static final String PREFIX = "the input is not a valid Arrow array: ";

  /** Export {@code batch}, let {@code lie} rewrite the exported struct, and score it. */
  private static String predictLying(NativeModel model, VectorSchemaRoot batch, java.util.function.Consumer<ArrowArray> lie)
      throws ReflectiveOperationException {
    java.lang.reflect.Field handle = NativeModel.class.getDeclaredField("handle");
    handle.setAccessible(true);
    long live = handle.getLong(model);
    try (ArrowArray in = ArrowArray.allocateNew(model.allocator());
        ArrowSchema inSchema = ArrowSchema.allocateNew(model.allocator());
        ArrowArray out = ArrowArray.allocateNew(model.allocator());
        ArrowSchema outSchema = ArrowSchema.allocateNew(model.allocator())) {
      Data.exportVectorSchemaRoot(model.allocator(), batch, null, in, inSchema);
      lie.accept(in);
      try {
        ModelException e = assertThrows(ModelException.class, () -> NativeBridge.predict(
            live, in.memoryAddress(), inSchema.memoryAddress(), out.memoryAddress(), outSchema.memoryAddress()));
        return e.getMessage();
      } finally {
        in.release();
        inSchema.release();
      }
    }
  }

  @Test
  void lyingLengthsAreModelExceptionsAndTheModelGoesOn() throws ReflectiveOperationException {
    try (NativeModel model = NativeModel.load(Fixtures.built("s1_logistic"));
        VectorSchemaRoot batch = VectorSchemaRoot.create(model.inputSchema(), model.allocator())) {
      for (int c = 0; c < batch.getFieldVectors().size(); c++) {
        Float8Vector x = (Float8Vector) batch.getVector(c);
        x.allocateNew(3);
        for (int r = 0; r < 3; r++) {
          x.set(r, 0.5 * r);
        }
        x.setValueCount(3);
      }
      batch.setRowCount(3);
      String message = predictLying(model, batch, in -> {
        ArrowArray.Snapshot s = in.snapshot();
        s.length = 1_000_000; // the struct claims a million rows; its children hold 3
        in.save(s);
      });
      assertEquals(PREFIX + "child 'x0' has 3 value(s) (from offset 0) but its parent needs 1000000; fix its producer",
          message);
      message = predictLying(model, batch, in -> {
        ArrowArray.Snapshot s = in.snapshot();
        s.offset = -5;
        in.save(s);
      });
      assertEquals(PREFIX + "the input has a negative length or offset; fix its producer", message);
      // The same model scores an honest batch afterwards.
      try (VectorSchemaRoot scored = model.predict(batch)) {
        assertEquals(3, scored.getRowCount());
      }
    }
  }
}
