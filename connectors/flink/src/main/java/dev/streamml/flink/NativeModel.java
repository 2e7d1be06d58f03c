package dev.streamml.flink;

import java.util.concurrent.atomic.AtomicLong;
import org.apache.arrow.c.ArrowArray;
import org.apache.arrow.c.ArrowSchema;
import org.apache.arrow.c.Data;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * A loaded, verified model binary. Thread-safe: many threads may call {@link #predict} at once.
 *
 * <pre>{@code
 * try (NativeModel model = NativeModel.load("build/models/s1_logistic.so");
 *     VectorSchemaRoot out = model.predict(batch)) {
 *   ...
 * }
 * }</pre>
 *
 * <p>Batches cross into native code through the Arrow C Data Interface without a copy; the output
 * comes back at offset 0, owned by the caller, allocated from {@link #allocator()}.
 */
public final class NativeModel implements AutoCloseable {
  private static final AtomicLong TOTAL_PREDICT_CALLS = new AtomicLong();

  private final String path;
  private final BufferAllocator allocator;
  private final Schema inputSchema;
  private final Schema outputSchema;
  private final AtomicLong predictCalls = new AtomicLong();
  private volatile long handle;

  private NativeModel(String path, long handle) {
    this.path = path;
    this.handle = handle;
    this.allocator = new RootAllocator();
    try {
      this.inputSchema = importSchema(true);
      this.outputSchema = importSchema(false);
    } catch (RuntimeException e) {
      close();
      throw e;
    }
  }

  /**
   * Load and verify the model binary at {@code path}: a local path or any URI Flink's file systems
   * read ({@code file://}, {@code s3://}, {@code hdfs://}...), copied to the task manager first.
   */
  public static NativeModel load(String path) {
    return load(path, null);
  }

  /**
   * Load the model binary at {@code path}, refusing it unless its SHA-256 is {@code sha256}
   * (lowercase hex; {@code null}: no check).
   */
  public static NativeModel load(String path, String sha256) {
    return load(path, sha256, null);
  }

  /** The JVM system property naming a trust file for every load that names none. */
  public static final String TRUSTED_MODELS_PROPERTY = "streamml.trusted-models";

  /**
   * Load the model binary at {@code path}. Loading a binary runs its native code: with a trust
   * file ({@code trustedModels}, else the system property {@value #TRUSTED_MODELS_PROPERTY}, else
   * the file {@code $STREAMML_TRUSTED_MODELS} names), a binary whose SHA-256 is not listed in it is
   * refused before it is opened. Every refusal (not a regular file, over the size cap, a truncated
   * or foreign library, an edited or invalid model) is a {@link ModelException} naming the file.
   *
   * @param sha256 refuse the binary unless its SHA-256 is this (lowercase hex); null: no check
   * @param trustedModels a trust file: one SHA-256 per line, {@code #} comments; null: see above
   */
  public static NativeModel load(String path, String sha256, String trustedModels) {
    if (path == null) {
      throw new ModelException("the model path is null");
    }
    String trust = trustedModels != null ? trustedModels : System.getProperty(TRUSTED_MODELS_PROPERTY);
    return new NativeModel(path, NativeBridge.load(ModelFiles.localPath(path), sha256, trust));
  }

  /** The path the model was loaded from. */
  public String path() {
    return path;
  }

  /** The model's info document (name, version, task, inputs, outputs, drift reference) as JSON. */
  public String infoJson() {
    return NativeBridge.infoJson(live());
  }

  /** The version the binary's own info names. */
  public String version() {
    return NativeBridge.version(live());
  }

  /** The SHA-256 of the binary that runs. */
  public String sha256() {
    return NativeBridge.sha256(live());
  }

  /** The declared inputs, in order. */
  public Schema inputSchema() {
    return inputSchema;
  }

  /** The declared outputs, in order. */
  public Schema outputSchema() {
    return outputSchema;
  }

  /** The allocator outputs come from; allocate inputs here too (or anywhere). */
  public BufferAllocator allocator() {
    return allocator;
  }

  /** Native predict calls made through this model. */
  public long predictCalls() {
    return predictCalls.get();
  }

  /** Native predict calls made through every model of this class loader. */
  public static long totalPredictCalls() {
    return TOTAL_PREDICT_CALLS.get();
  }

  /**
   * Score a batch. Columns are matched to the declared inputs by name and cast where the model's
   * documented cast table allows; a missing column, a wrong type or a null in a non-nullable input
   * is a {@link ModelException} naming the column. The caller closes the returned root.
   */
  public VectorSchemaRoot predict(VectorSchemaRoot input) {
    long live = live();
    try (ArrowArray inArray = ArrowArray.allocateNew(allocator);
        ArrowSchema inSchema = ArrowSchema.allocateNew(allocator);
        ArrowArray outArray = ArrowArray.allocateNew(allocator);
        ArrowSchema outSchema = ArrowSchema.allocateNew(allocator)) {
      Data.exportVectorSchemaRoot(allocator, input, null, inArray, inSchema);
      try {
        predictCalls.incrementAndGet();
        TOTAL_PREDICT_CALLS.incrementAndGet();
        NativeBridge.predict(
            live,
            inArray.memoryAddress(),
            inSchema.memoryAddress(),
            outArray.memoryAddress(),
            outSchema.memoryAddress());
      } finally {
        // Native code moves the input out; release it here only if it did not get that far.
        inArray.release();
        inSchema.release();
      }
      return Data.importVectorSchemaRoot(allocator, outArray, outSchema, null);
    }
  }

  /** Open a row scorer handle ({@link NativeBridge#rowOpen}); the caller releases it. */
  long openRow(boolean absentIsNull) {
    return NativeBridge.rowOpen(live(), absentIsNull);
  }

  /** Score encoded rows as one batch ({@link NativeBridge#scoreRows}). */
  byte[] scoreRows(java.nio.ByteBuffer in, int length, int rows, boolean absentIsNull) {
    return NativeBridge.scoreRows(live(), in, length, rows, absentIsNull);
  }

  /** Score rows of doubles as one batch ({@link NativeBridge#scoreRowsDoubles}). */
  byte[] scoreRowsDoubles(double[] values, int rows, int width) {
    return NativeBridge.scoreRowsDoubles(live(), values, rows, width);
  }

  /** Count a native predict call made through a row scorer. */
  void countPredictCall() {
    predictCalls.incrementAndGet();
    TOTAL_PREDICT_CALLS.incrementAndGet();
  }

  private Schema importSchema(boolean inputs) {
    try (ArrowSchema schema = ArrowSchema.allocateNew(allocator)) {
      if (inputs) {
        NativeBridge.inputSchema(handle, schema.memoryAddress());
      } else {
        NativeBridge.outputSchema(handle, schema.memoryAddress());
      }
      return Data.importSchema(allocator, schema, null);
    }
  }

  private long live() {
    long h = handle;
    if (h == 0) {
      throw new ModelException("model binary '" + path + "' is closed");
    }
    return h;
  }

  @Override
  public synchronized void close() {
    long h = handle;
    handle = 0;
    if (h != 0) {
      NativeBridge.release(h);
    }
    allocator.close();
  }

  @Override
  public String toString() {
    return "NativeModel(" + path + ")";
  }
}
