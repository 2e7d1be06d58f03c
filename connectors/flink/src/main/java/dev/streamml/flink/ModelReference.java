package dev.streamml.flink;

import java.nio.file.Path;

/**
 * Model references ({@code docs/lifecycle.md}): a binary's path, a <b>model directory</b> ({@code
 * <dir>/<version>.so} plus alias files such as {@code champion} holding a version name; {@code
 * DIR} means {@code DIR@champion}) or {@code DIR@ALIAS}. The directory is read by the Rust core
 * through the JNI shim, exactly as the Python hosts read it. A URI with a scheme other than {@code
 * file:} ({@code s3://}...) is a binary's location, copied to the task manager as before; it is
 * not re-resolved.
 */
public final class ModelReference {
  private ModelReference() {}

  /**
   * What a reference names now.
   *
   * @param reference the reference as given
   * @param path the binary to load
   * @param sha256 its SHA-256 (lowercase hex); the host loads the binary pinned to it
   * @param version the model directory's version name; null for a binary's path (its own info
   *     names its version)
   */
  public record Resolved(String reference, String path, String sha256, String version) {}

  /** Whether {@code reference} names a model directory (or one of its aliases). */
  public static boolean isDirectory(String reference) {
    if (reference == null || isRemote(reference)) {
      return false;
    }
    return "directory".equals(NativeBridge.parseReference(reference)[0]);
  }

  /** Whether {@code reference} is a URI read through Flink's file systems (not re-resolved). */
  public static boolean isRemote(String reference) {
    int colon = reference.indexOf(':');
    return colon >= 2
        && reference.substring(0, colon).matches("[A-Za-z][A-Za-z0-9+.-]*")
        && !reference.regionMatches(true, 0, "file:", 0, 5);
  }

  /**
   * Resolve {@code reference} to a binary, its SHA-256 and its version, refusing binaries over
   * {@code maxBytes} ({@code <= 0}: the loader's cap). Errors are {@link ModelException}s naming
   * the directory, alias or file.
   */
  public static Resolved resolve(String reference, long maxBytes) {
    if (reference == null) {
      throw new ModelException("the model reference is null");
    }
    String local = reference.regionMatches(true, 0, "file:", 0, 5) ? ModelFiles.localPath(reference) : reference;
    String[] r = NativeBridge.resolveReference(local, maxBytes);
    return new Resolved(reference, r[1], r[2], r[3]);
  }

  /**
   * Point {@code alias} of the model directory {@code dir} at {@code version}, atomically (a host
   * re-resolving at the same moment reads the old version or the new one). Rolling back is moving
   * the alias back.
   */
  public static void setAlias(Path dir, String alias, String version) {
    NativeBridge.setAlias(dir.toString(), alias, version);
  }
}
