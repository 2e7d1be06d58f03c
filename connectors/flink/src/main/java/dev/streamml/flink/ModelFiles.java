package dev.streamml.flink;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.apache.flink.core.fs.FileSystem;

/**
 * Model locations: a local path, or any URI Flink's {@link FileSystem} reads ({@code file://},
 * {@code s3://}, {@code hdfs://}... with the usual plugins). A remote binary is copied to a local
 * file on the task manager, then loaded and verified there like a local one (SHA-256, ABI, info).
 */
final class ModelFiles {
  private ModelFiles() {}

  /**
   * The local path to load for {@code location}: itself when it is a plain path or a {@code
   * file:} URI, else a fresh local copy read through Flink's file systems.
   */
  static String localPath(String location) {
    URI uri = schemeOf(location);
    if (uri == null) {
      return location;
    }
    if ("file".equals(uri.getScheme())) {
      return Path.of(uri).toString();
    }
    org.apache.flink.core.fs.Path remote = new org.apache.flink.core.fs.Path(uri);
    try {
      FileSystem fs = remote.getFileSystem();
      Path dir = Path.of(System.getProperty("java.io.tmpdir"), "streamml-models");
      Files.createDirectories(dir);
      String name = remote.getName().isEmpty() ? "model" : remote.getName();
      Path local = dir.resolve(digest(location) + "-" + name);
      Path partial = Files.createTempFile(dir, name, ".part");
      try (InputStream in = fs.open(remote)) {
        Files.copy(in, partial, StandardCopyOption.REPLACE_EXISTING);
        Files.move(partial, local, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      } finally {
        Files.deleteIfExists(partial);
      }
      return local.toString();
    } catch (IOException e) {
      throw new ModelException(
          "cannot copy the model binary '"
              + location
              + "' to the task manager: "
              + e.getMessage()
              + "; check the URI and that Flink has a file system (plugin) for '"
              + uri.getScheme()
              + "'",
          e);
    }
  }

  /** The URI of {@code location} if it has a scheme of two or more letters (not {@code C:\...}). */
  private static URI schemeOf(String location) {
    int colon = location.indexOf(':');
    if (colon < 2 || !location.substring(0, colon).matches("[A-Za-z][A-Za-z0-9+.-]*")) {
      return null;
    }
    try {
      return new URI(location);
    } catch (URISyntaxException e) {
      throw new ModelException("model location '" + location + "' is not a valid URI: " + e.getMessage(), e);
    }
  }

  private static String digest(String text) {
    try {
      byte[] hash = MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(hash, 0, 8);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
