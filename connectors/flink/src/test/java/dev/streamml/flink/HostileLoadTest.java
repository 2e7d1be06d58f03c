package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hostile model files are a {@link ModelException} naming the file, and the JVM keeps running:
 * before these checks, a truncated binary killed the JVM with SIGBUS inside dlopen.
 */
class HostileLoadTest {
  @TempDir Path tmp;

  private static Path lgbm() {
    return Path.of(Fixtures.model("lgbm"));
  }

  private static String sha256(byte[] bytes) throws NoSuchAlgorithmException {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
  }

  private static String refused(Path path, String trustedModels) {
    ModelException e = assertThrows(ModelException.class,
        () -> NativeModel.load(path.toString(), null, trustedModels).close());
    assertTrue(e.getMessage().startsWith("cannot load model binary '" + path + "': "), e.getMessage());
    return e.getMessage();
  }

  /** The JVM still loads and scores after every refusal. */
  private static void stillScores() {
    try (NativeModel model = NativeModel.load(lgbm().toString())) {
      assertEquals(32, model.inputSchema().getFields().size());
    }
  }

  @Test
  void truncatedBinariesAreRefusedAndTheJvmKeepsRunning() throws IOException {
    byte[] whole = Files.readAllBytes(lgbm());
    for (int pct = 5; pct < 100; pct += 5) {
      Path cut = tmp.resolve("cut" + pct + ".so");
      Files.write(cut, java.util.Arrays.copyOf(whole, whole.length * pct / 100));
      String message = refused(cut, null);
      assertTrue(message.contains("the file is truncated"), message);
    }
    stillScores();
  }

  @Test
  void anEditedIrIsRefusedByItsChecksum() throws IOException {
    byte[] bytes = Files.readAllBytes(lgbm());
    int n = bytes.length;
    long size = ByteBuffer.wrap(bytes, n - 16, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    int start = n - 48 - (int) size;
    String ir = new String(bytes, start, (int) size, StandardCharsets.UTF_8);
    int at = start + ir.indexOf("\"threshold\":[") + "\"threshold\":[".length();
    while (!Character.isDigit(bytes[at])) {
      at++;
    }
    bytes[at] = (byte) (bytes[at] == '7' ? '3' : '7');
    Path edited = tmp.resolve("edited.so");
    Files.write(edited, bytes);
    String message = refused(edited, null);
    assertTrue(message.contains("the IR was edited or damaged after `streamml compile`"), message);
    stillScores();
  }

  @Test
  void aCycleInATreeIsRefused() {
    String message = refused(Fixtures.dir().resolve("lgbm_cycle.so"), null);
    assertTrue(message.contains("tree 0: node 0 is reached twice (from node 1)"), message);
    stillScores();
  }

  @Test
  void aFifoAndADirectoryAreRefused() throws Exception {
    Path fifo = tmp.resolve("model.so");
    Process mk = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
    assertEquals(0, mk.waitFor());
    assertTrue(refused(fifo, null).endsWith("it is a FIFO; a model binary must be a regular file"));
    assertTrue(refused(tmp, null).endsWith("it is a directory; a model binary must be a regular file"));
  }

  @Test
  void aTrustFileAllowsListedBinariesAndRefusesOthers() throws Exception {
    String lgbmSha = sha256(Files.readAllBytes(lgbm()));
    Path trust = tmp.resolve("trusted.txt");
    Files.writeString(trust, "# production\n" + lgbmSha + "\n");
    try (NativeModel model = NativeModel.load(lgbm().toString(), null, trust.toString())) {
      assertEquals(lgbmSha, model.sha256());
    }
    Path s1 = Path.of(Fixtures.built("s1_logistic"));
    String s1Sha = sha256(Files.readAllBytes(s1));
    assertEquals("cannot load model binary '" + s1 + "': its sha256 " + s1Sha + " is not in the trust file '"
        + trust + "' (1 digest(s)); loading a binary runs its code, so only listed binaries load: add the"
        + " digest there if you trust this file", refused(s1, trust.toString()));
    // The system property is the default trust file of every load.
    System.setProperty(NativeModel.TRUSTED_MODELS_PROPERTY, trust.toString());
    try {
      assertThrows(ModelException.class, () -> NativeModel.load(s1.toString()).close());
      NativeModel.load(lgbm().toString()).close();
    } finally {
      System.clearProperty(NativeModel.TRUSTED_MODELS_PROPERTY);
    }
  }
}
