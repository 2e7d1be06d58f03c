package dev.streamml.flink;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;

/**
 * Loads the JNI library: from {@code -Dstreamml.jni.library=/path/libstreamml_jni.so} when set,
 * otherwise extracted from this jar's {@code native/<os>-<arch>/} to a fresh temporary file (a
 * fresh file per class loader, so a Flink job that is submitted again loads it again).
 */
final class NativeLibraryLoader {
  static final String PROPERTY = "streamml.jni.library";

  private NativeLibraryLoader() {}

  static synchronized void load() {
    String explicit = System.getProperty(PROPERTY);
    if (explicit != null && !explicit.isEmpty()) {
      System.load(Path.of(explicit).toAbsolutePath().toString());
      return;
    }
    String resource = "/native/" + platform() + "/" + System.mapLibraryName("streamml_jni");
    try (InputStream in = NativeLibraryLoader.class.getResourceAsStream(resource)) {
      if (in == null) {
        throw new ModelException(
            "no streamml native library for this platform in the jar; expected resource '"
                + resource
                + "'; build the jar on this platform or set -D"
                + PROPERTY
                + "=/path/to/library");
      }
      Path file = Files.createTempFile("streamml_jni", "-" + System.mapLibraryName("x"));
      file.toFile().deleteOnExit();
      Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
      System.load(file.toAbsolutePath().toString());
    } catch (IOException e) {
      throw new ModelException("cannot extract the streamml native library '" + resource + "'", e);
    }
  }

  /** {@code linux-x86_64}, {@code darwin-aarch64}, ... as build-native.sh names them. */
  static String platform() {
    String os = System.getProperty("os.name").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch").toLowerCase(Locale.ROOT);
    String osName = os.contains("mac") || os.contains("darwin") ? "darwin" : os.contains("linux") ? "linux" : os;
    String archName =
        switch (arch) {
          case "amd64", "x86_64" -> "x86_64";
          case "aarch64", "arm64" -> "aarch64";
          default -> arch;
        };
    return osName + "-" + archName;
  }
}
