package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class ModelFilesTest {
  @Test
  void aFileUriLoadsTheSameBinaryAsItsPath() {
    String path = Fixtures.built("s1_logistic");
    String uri = Path.of(path).toUri().toString();
    assertTrue(uri.startsWith("file:/"), uri);
    try (NativeModel byPath = NativeModel.load(path);
        NativeModel byUri = NativeModel.load(uri)) {
      assertEquals(byPath.sha256(), byUri.sha256());
      assertEquals(uri, byUri.path());
    }
  }

  @Test
  void aSchemeWithoutAFileSystemIsAModelExceptionNamingIt() {
    ModelException e =
        assertThrows(ModelException.class, () -> NativeModel.load("nosuchfs://bucket/models/m.so"));
    assertTrue(
        e.getMessage().startsWith("cannot copy the model binary 'nosuchfs://bucket/models/m.so' to the task manager: "),
        e.getMessage());
    assertTrue(e.getMessage().endsWith("that Flink has a file system (plugin) for 'nosuchfs'"), e.getMessage());
  }

  @Test
  void plainPathsAreNotUris() {
    assertEquals("/models/m.so", ModelFiles.localPath("/models/m.so"));
    assertEquals("models/m.so", ModelFiles.localPath("models/m.so"));
  }
}
