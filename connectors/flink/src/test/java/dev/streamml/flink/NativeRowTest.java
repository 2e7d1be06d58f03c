package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.streamml.flink.Fixtures.FixtureRow;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The one-row path's buffers are reused from row to row, and a row of Doubles is passed as a
 * {@code double[]} while any other row is encoded: rows of every shape, one after the other, give
 * the scores Python gives and the outcomes of the batch path ({@link RowScorer#score}, which encodes
 * every row), word for word.
 */
class NativeRowTest {
  /** What the batch path gives for {@code row}: its outputs, or its refusal. */
  private static void assertSameAsBatch(RowScorer scorer, Object[] row, String what) {
    RowScorer.Result one = scorer.scoreOne(row);
    RowScorer.Result batch = scorer.score(List.<Object[]>of(row));
    assertEquals(batch.error(0), one.error(0), what);
    assertArrayEquals(batch.outputs(0), one.outputs(0), what);
  }

  @Test
  void rowsOfEveryShapeInTurnGiveExactScoresAndTheCoresMessages() {
    List<FixtureRow> rows = Fixtures.rows().subList(0, 60);
    try (RowScorer scorer = RowScorer.open(Fixtures.built("s1_logistic"), null)) {
      long calls = scorer.model().predictCalls();
      long doubles = 0;
      int scored = 0;
      for (int k = 0; k < rows.size(); k++) {
        FixtureRow r = rows.get(k);
        Object[] values = r.boxed();
        // A row of Doubles: passed as doubles, Python's score bit for bit.
        RowScorer.Result got = scorer.scoreOne(values);
        assertNull(got.error(0), "row " + r.id());
        assertEquals(Double.doubleToRawLongBits(r.s1()), Double.doubleToRawLongBits((Double) got.value(0)),
            "row " + r.id() + ": python " + r.s1() + ", one-row path " + got.value(0));
        doubles++;
        scored++;
        // Then a row of another shape, which must leave nothing behind for the next.
        Object[] other = values.clone();
        switch (k % 6) {
          case 0 -> other[k % 32] = null; // encoded: a null, which s1's inputs refuse
          case 1 -> other = Arrays.copyOf(values, 31); // doubles, one short
          case 2 -> other = Arrays.copyOf(values, 33); // encoded: one too many (a null)
          case 3 -> other[5] = "1.5"; // encoded: a string for a float64 input
          case 4 -> other[7] = 3L; // encoded: an integer, which a float64 input takes
          default -> other = new Object[0]; // doubles, none
        }
        boolean allDoubles = Arrays.stream(other).allMatch(v -> v instanceof Double);
        long before = scorer.model().predictCalls();
        assertSameAsBatch(scorer, other, "row " + r.id() + " case " + (k % 6));
        if (allDoubles && other.length <= 32) {
          doubles++;
        }
        // The batch path made one call if it scored the row; the one-row path the same.
        scored += (int) (scorer.model().predictCalls() - before) / 2;
      }
      assertEquals(doubles, scorer.rowsPassedAsDoubles());
      // 60 rows of doubles, plus per six rows the one with an integer.
      assertEquals(60 + 10, scored);
      assertEquals(scored * 2 - 60, scorer.model().predictCalls() - calls);
      // The refusals are the core's words.
      assertEquals("expected 32 values in the model's input order (x0, x1, x2, x3, x4, x5, x6, x7, and 24 "
          + "more), got 31", scorer.scoreOne(Arrays.copyOf(rows.get(0).boxed(), 31)).error(0));
      // Unboxed doubles (ML_PREDICT's rows of DOUBLE): the same scores and words.
      for (FixtureRow r : rows.subList(0, 10)) {
        assertEquals(Double.doubleToRawLongBits(r.s1()),
            Double.doubleToRawLongBits((Double) scorer.scoreOneDoubles(r.features()).value(0)));
      }
      assertEquals(scorer.scoreOne(Arrays.copyOf(rows.get(0).boxed(), 31)).error(0),
          scorer.scoreOneDoubles(Arrays.copyOf(rows.get(0).features(), 31)).error(0));
      Object[] withNull = rows.get(0).boxed();
      withNull[3] = null;
      assertEquals("field 'x3' is null but the input is not nullable", scorer.scoreOne(withNull).error(0));
    }
  }

  @Test
  void doublesForInputsOfOtherTypesAreCheckedAsEncodedDoubles() {
    try (RowScorer scorer = RowScorer.open(Fixtures.built("typed_inputs"), "y")) {
      List<Object[]> rows = new ArrayList<>();
      rows.add(new Object[] {1.0, 2.0, 3.0, 4.0, 1.0, 2.0}); // doubles for integer, bool and utf8 inputs
      rows.add(new Object[] {1.0, 2.0, null, null, null, "ab"}); // encoded, scored
      rows.add(new Object[] {1.0, 2.0}); // doubles, too few
      rows.add(new Object[] {0.5, 1.5, 2L, 3L, true, "c"}); // encoded, scored
      for (Object[] row : rows) {
        assertSameAsBatch(scorer, row, Arrays.toString(row));
      }
      assertEquals("field 'n' is a float, expected int8",
          scorer.scoreOne(new Object[] {1.0, 2.0, 3.0, 4.0, 1.0, 2.0}).error(0));
      assertEquals(0.5 + 1.5 + 2 + 3 + 1 + 1, scorer.scoreOne(rows.get(3)).value(0));
      assertEquals(3, scorer.rowsPassedAsDoubles());
      assertEquals("field 'n' is a float, expected int8",
          scorer.scoreOneDoubles(new double[] {1.0, 2.0, 3.0, 4.0, 1.0, 2.0}).error(0));
    }
  }

  @Test
  void batchesOfDoublesGiveTheOutcomesOfEncodedBatches() {
    List<FixtureRow> fixture = Fixtures.rows().subList(0, 100);
    List<Object[]> rows = new ArrayList<>();
    fixture.forEach(r -> rows.add(r.boxed()));
    try (RowScorer scorer = RowScorer.open(Fixtures.built("s1_logistic"), null)) {
      long calls = scorer.model().predictCalls();
      RowScorer.Result doubles = scorer.score(rows);
      assertEquals(calls + 1, scorer.model().predictCalls(), "one native call for the batch");
      for (int i = 0; i < fixture.size(); i++) {
        assertNull(doubles.error(i));
        assertEquals(Double.doubleToRawLongBits(fixture.get(i).s1()),
            Double.doubleToRawLongBits((Double) doubles.value(i)), "row " + fixture.get(i).id());
      }
      // One row with an integer: the batch is encoded, the same scores.
      List<Object[]> mixed = new ArrayList<>(rows);
      Object[] withLong = rows.get(3).clone();
      withLong[7] = 3L;
      mixed.add(withLong);
      RowScorer.Result encoded = scorer.score(mixed);
      for (int i = 0; i < rows.size(); i++) {
        assertArrayEquals(doubles.outputs(i), encoded.outputs(i), "row " + i);
      }
      // A short row among rows of doubles: refused in the core's words, the others scored.
      List<Object[]> withShort = new ArrayList<>(rows);
      withShort.set(5, Arrays.copyOf(rows.get(5), 31));
      RowScorer.Result shortRow = scorer.score(withShort);
      assertEquals("expected 32 values in the model's input order (x0, x1, x2, x3, x4, x5, x6, x7, and 24 "
          + "more), got 31", shortRow.error(5));
      assertArrayEquals(doubles.outputs(6), shortRow.outputs(6));
    }
    try (RowScorer scorer = RowScorer.open(Fixtures.built("typed_inputs"), "y")) {
      // Doubles for inputs that are not all float64: checked cell by cell, as when encoded.
      List<Object[]> typed = new ArrayList<>();
      typed.add(new Object[] {1.0, 2.0, 3.0, 4.0, 1.0, 2.0});
      typed.add(new Object[] {0.5, 1.5, 0.0, 0.0, 0.0, 0.0});
      RowScorer.Result asDoubles = scorer.score(typed);
      typed.add(new Object[] {0.5, 1.5, 2L, 3L, true, "c"});
      RowScorer.Result asEncoded = scorer.score(typed);
      for (int i = 0; i < 2; i++) {
        assertEquals("field 'n' is a float, expected int8", asDoubles.error(i));
        assertEquals(asEncoded.error(i), asDoubles.error(i));
      }
      assertEquals(0.5 + 1.5 + 2 + 3 + 1 + 1, asEncoded.value(2));
    }
  }
}
