package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The per-function cache of row scorers: one per model path, the last one found without a lookup. */
class RowScorerCacheTest {
  @Test
  void eachPathHasOneScorerAndTheLastPathIsNotConfusedWithAnother() {
    String typed = Fixtures.built("typed_inputs");
    String s1 = Fixtures.built("s1_logistic");
    RowScorer a;
    try (RowScorerCache cache = new RowScorerCache()) {
      a = cache.get(typed);
      assertSame(a, cache.get(typed));
      // An equal path that is another String object finds the same scorer.
      assertSame(a, cache.get(new String(typed.toCharArray())));
      RowScorer b = cache.get(s1);
      assertNotSame(a, b);
      assertEquals(32, b.arity());
      // Back to the first path after another: its own scorer, not the last one.
      assertSame(a, cache.get(typed));
      assertEquals(6, a.arity());
      assertEquals(4.0, a.scoreOne(new Object[] {1.0, null, null, null, null, "xyz"}).value(0));
      ModelException e = assertThrows(ModelException.class, () -> cache.get(null));
      assertEquals("the model path argument is null", e.getMessage());
    }
    // close() closed the scorers and their models.
    ModelException e = assertThrows(ModelException.class,
        () -> a.scoreOne(new Object[] {1.0, null, null, null, null, "xyz"}));
    assertEquals("model binary '" + typed + "' is closed", e.getMessage());
  }
}
