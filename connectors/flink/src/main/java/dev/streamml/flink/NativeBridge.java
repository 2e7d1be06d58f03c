package dev.streamml.flink;

/**
 * The native methods of {@code operators/jni}. Arrow structs are passed by memory address
 * ({@code org.apache.arrow.c.ArrowArray#memoryAddress()}); every failure, and every panic of the
 * native code, is thrown as a {@link ModelException}. Use {@link NativeModel}, not this class.
 */
final class NativeBridge {
  static {
    NativeLibraryLoader.load();
  }

  private NativeBridge() {}

  /**
   * Load and verify a model binary; returns a handle for the other calls. {@code trustedModels}:
   * a trust file (one SHA-256 per line) or null for {@code $STREAMML_TRUSTED_MODELS}, if set.
   */
  static native long load(String path, String expectedSha256, String trustedModels);

  static native String infoJson(long handle);

  static native String sha256(long handle);

  /** Export the declared inputs as a struct schema into the empty ArrowSchema at the address. */
  static native void inputSchema(long handle, long outSchema);

  /** Export the declared outputs as a struct schema into the empty ArrowSchema at the address. */
  static native void outputSchema(long handle, long outSchema);

  /**
   * Score the batch exported at {@code inArray}/{@code inSchema} (moved to native code) and export
   * the output, at offset 0, into the empty structs at {@code outArray}/{@code outSchema}.
   */
  static native void predict(long handle, long inArray, long inSchema, long outArray, long outSchema);

  static native void release(long handle);

  /**
   * Open a row scorer of the model (the core's one-row path; {@code operators/jni/src/row.rs} has
   * the encoding of rows and outputs). Not thread-safe: one per thread. {@code absentIsNull}: an
   * absent value is read as null instead of refusing the row.
   */
  static native long rowOpen(long handle, boolean absentIsNull);

  /**
   * Check and score the row encoded in {@code in[0, length)} and write its outputs into {@code
   * out} (both direct buffers); returns the bytes written, -1 when the row was refused ({@link
   * #rowError} says why), or {@code -n} (n &gt; 1) when {@code out} must hold n bytes.
   */
  static native int rowScore(long row, java.nio.ByteBuffer in, int length, java.nio.ByteBuffer out);

  /**
   * {@link #rowScore} for a row of {@code length} doubles, none null, at the start of {@code values}
   * (the core checks and scores it as the same values encoded).
   */
  static native int rowScoreDoubles(long row, double[] values, int length, java.nio.ByteBuffer out);

  /** Why the last refused row of this row scorer was refused. */
  static native String rowError(long row);

  static native void rowRelease(long row);

  /**
   * Score {@code rows} rows encoded one after the other in {@code in[0, length)} as one batch (the
   * core's row checks; see {@code operators/jni/src/row.rs}): a byte 1 if the model ran, then per
   * row {@code O} and its outputs or {@code E} and the reason it was refused.
   */
  static native byte[] scoreRows(
      long handle, java.nio.ByteBuffer in, int length, int rows, boolean absentIsNull);

  /**
   * {@link #scoreRows} for {@code rows} rows of {@code width} doubles each, none null, one row after
   * the other at the start of {@code values}: the same checks and the same answer.
   */
  static native byte[] scoreRowsDoubles(long handle, double[] values, int rows, int width);

  /**
   * Resolve a model reference (a binary's path, a model directory, {@code DIR@ALIAS}) with the
   * core's {@code reference} module: {@code {kind, path, sha256, version}}, {@code kind} {@code
   * file} or {@code directory}, {@code version} null for a file. {@code maxBytes <= 0}: the
   * loader's cap.
   */
  static native String[] resolveReference(String reference, long maxBytes);

  /**
   * What a reference names without reading it: {@code {kind, where, alias}}, {@code kind} {@code
   * file} (where: the path; alias null) or {@code directory} (where: the directory).
   */
  static native String[] parseReference(String reference);

  /** Point {@code alias} of the model directory {@code dir} at {@code version}, atomically. */
  static native void setAlias(String dir, String alias, String version);

  /** The version the loaded binary's own info names. */
  static native String version(long handle);
}
