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
}
