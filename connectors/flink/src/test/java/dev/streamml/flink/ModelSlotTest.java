package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link ModelSlot}: resolution, refusal, swaps only at acquire, holds, the reload thread. */
class ModelSlotTest {
  @TempDir Path tmp;

  private static ModelSlot<RowScorer> slot(Path dir, Duration every) {
    return new ModelSlot<>(new ModelSlot.Config(dir.toString(), null, null, every),
        (model, version) -> new RowScorer(model, null));
  }

  private static String version(ModelSlot<?> slot) {
    try (ModelSlot.Version<?> v = slot.acquire()) {
      return v.version();
    }
  }

  @Test
  void aReferenceResolvesLikeThePythonHosts() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    ModelReference.setAlias(dir, "challenger", "2");
    ModelReference.Resolved champion = ModelReference.resolve(dir.toString(), 0);
    assertEquals(List.of("1", dir.resolve("1.so").toString()), List.of(champion.version(), champion.path()));
    assertEquals("2", ModelReference.resolve(dir + "@challenger", 0).version());
    ModelReference.Resolved plain = ModelReference.resolve(Versions.binary("3").toString(), 0);
    assertNull(plain.version());
    assertTrue(ModelReference.isDirectory(dir + "@challenger"));
    assertFalse(ModelReference.isDirectory(Versions.binary("3").toString()));
    try (NativeModel m = NativeModel.load(Versions.binary("3").toString())) {
      assertEquals(m.sha256(), plain.sha256());
      assertEquals("3", m.version()); // the binary's own info
    }
  }

  @Test
  void resolutionErrorsNameTheDirectoryAndKeepTheVersionServing() throws Exception {
    Path empty = Files.createDirectories(tmp.resolve("empty"));
    ModelException e = assertThrows(ModelException.class, () -> slot(empty, null));
    assertEquals("model directory '" + empty + "' has no alias 'champion': expected a file '" + empty
        + "/champion' holding a version name; write one (streamml.lifecycle.set_alias) or name another"
        + " alias as DIR@ALIAS", e.getMessage());

    Path dir = Versions.directory(tmp.resolve("fraud"));
    try (ModelSlot<RowScorer> slot = slot(dir, null)) {
      Files.writeString(dir.resolve("champion"), "7\n");
      assertFalse(slot.refresh());
      assertEquals(1, slot.resolveErrors());
      assertEquals("alias 'champion' of model directory '" + dir + "' names version '7', but '" + dir
          + "/7.so' does not exist; add that binary or move the alias to a version the directory has",
          slot.lastError());
      assertEquals("1", version(slot));
      assertEquals(0, slot.refused());
    }
  }

  @Test
  void aCorruptVersionIsRefusedOnceAndTheOldOneKeepsServing() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    Versions.corrupt(dir, "5");
    try (ModelSlot<RowScorer> slot = slot(dir, null)) {
      ModelReference.setAlias(dir, "champion", "5");
      assertFalse(slot.refresh());
      assertFalse(slot.refresh()); // the same binary again: not loaded, not counted again
      assertEquals(1, slot.refused());
      assertEquals("1", version(slot));
      assertTrue(slot.lastError().startsWith("cannot load model binary '" + dir + "/5.so'"), slot.lastError());
      ModelReference.setAlias(dir, "champion", "2");
      assertTrue(slot.refresh());
      assertEquals(List.of("2", 1L, 1L), List.of(version(slot), slot.swaps(), slot.refused()));
    }
  }

  @Test
  void anUntrustedOrUnpinnedVersionIsRefusedBeforeItRuns() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    String sha1 = ModelReference.resolve(dir.toString(), 0).sha256();
    Path trust = Files.writeString(tmp.resolve("trusted"), sha1 + "\n");
    ModelSlot.Config trusted = new ModelSlot.Config(dir.toString(), null, trust.toString(), null);
    try (ModelSlot<Void> slot = new ModelSlot<>(trusted, null)) {
      ModelReference.setAlias(dir, "champion", "2");
      assertFalse(slot.refresh());
      assertEquals(1, slot.refused());
      assertTrue(slot.lastError().contains("trust"), slot.lastError());
      assertEquals("1", version(slot));
    }
    ModelReference.setAlias(dir, "champion", "1");
    ModelSlot.Config pinned = new ModelSlot.Config(dir.toString(), sha1, null, null);
    try (ModelSlot<Void> slot = new ModelSlot<>(pinned, null)) {
      ModelReference.setAlias(dir, "champion", "3");
      assertFalse(slot.refresh());
      String sha3 = ModelReference.resolve(dir.toString(), 0).sha256();
      assertEquals("model binary '" + dir + "/3.so' has SHA-256 " + sha3 + ", but the pin (sha256) is " + sha1
          + "; load the pinned binary or change the pin", slot.lastError());
      assertEquals(List.of("1", 1L), List.of(version(slot), slot.refused()));
    }
  }

  @Test
  void aStagedVersionTakesOverOnlyAtTheNextAcquireAndNeverGoesBack() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    try (ModelSlot<RowScorer> slot = slot(dir, null)) {
      ModelSlot.Version<RowScorer> held = slot.acquire();
      ModelReference.setAlias(dir, "champion", "2");
      assertTrue(slot.refresh());
      assertEquals("1", slot.servingVersion()); // staged, not serving
      assertEquals("2", version(slot));
      assertEquals("2", version(slot));
      // The batch holding version 1 still scores with it; it closes when released.
      assertEquals(1, held.prepared().score(List.<Object[]>of(new Object[] {0.1, 0.2, 0.3, 0.4})).size());
      held.close();
      assertThrows(ModelException.class, () -> held.model().infoJson());
      // Moved and moved back before a batch asked: the staged version is dropped.
      ModelReference.setAlias(dir, "champion", "3");
      assertTrue(slot.refresh());
      ModelReference.setAlias(dir, "champion", "2");
      assertFalse(slot.refresh());
      assertEquals(List.of("2", 1L), List.of(version(slot), slot.swaps()));
    }
  }

  @Test
  void theReloadThreadStagesAMovedAliasAndCloseStopsIt() throws Exception {
    Path dir = Versions.directory(tmp.resolve("fraud"));
    ModelSlot<RowScorer> slot = slot(dir, Duration.ofMillis(20));
    try {
      assertTrue(reloadThreads(dir) == 1, "one reload thread");
      ModelReference.setAlias(dir, "champion", "3");
      long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      while (!version(slot).equals("3") && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      assertEquals(List.of("3", 1L), List.of(slot.servingVersion(), slot.swaps()));
    } finally {
      slot.close();
    }
    assertTrue(slot.reloaderStopped());
    assertEquals(0, reloadThreads(dir));
  }

  @Test
  void aBinarysPathWithoutAnIntervalIsLoadedOnceAsBefore() throws Exception {
    Path copy = Files.copy(Versions.binary("2"), tmp.resolve("model.so"));
    ModelSlot<RowScorer> slot = new ModelSlot<>(ModelSlot.Config.of(copy.toString()),
        (model, version) -> new RowScorer(model, null));
    ModelSlot.Version<RowScorer> v = slot.acquire();
    assertEquals(List.of("2", copy.toString()), List.of(v.version(), v.model().path())); // the binary's own
    v.close();
    Files.copy(Versions.binary("3"), copy, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    assertFalse(slot.refresh());
    assertTrue(v == slot.acquire(), "the same version, never swapped");
    assertEquals(0, reloadThreads(copy));
    slot.close();
    assertThrows(ModelException.class, () -> v.model().infoJson());
  }

  private static long reloadThreads(Path dir) {
    return Thread.getAllStackTraces().keySet().stream()
        .filter(t -> t.getName().equals("streamml-reload " + dir) && t.isAlive()).count();
  }
}
