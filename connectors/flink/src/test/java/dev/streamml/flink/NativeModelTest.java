package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.streamml.flink.Fixtures.FixtureRow;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.junit.jupiter.api.Test;

class NativeModelTest {
  @Test
  void loadsAndDescribesTheS1Binary() {
    try (NativeModel model = NativeModel.load(Fixtures.built("s1_logistic"))) {
      assertEquals(32, model.inputSchema().getFields().size());
      assertEquals("x0", model.inputSchema().getFields().get(0).getName());
      assertEquals("probability", model.outputSchema().getFields().get(0).getName());
      assertTrue(model.infoJson().contains("\"name\":\"s1_logistic\""), model.infoJson());
      assertEquals(64, model.sha256().length());
    }
  }

  @Test
  void predictOnAVectorSchemaRootEqualsPythonBitForBit() {
    List<FixtureRow> rows = Fixtures.rows();
    for (String name : List.of("s1", "lgbm")) {
      try (NativeModel model = NativeModel.load(Fixtures.model(name));
          VectorSchemaRoot batch = VectorSchemaRoot.create(model.inputSchema(), model.allocator())) {
        batch.allocateNew();
        for (int c = 0; c < Fixtures.FEATURES; c++) {
          Float8Vector v = (Float8Vector) batch.getVector(c);
          for (int r = 0; r < rows.size(); r++) {
            v.set(r, rows.get(r).features()[c]);
          }
          v.setValueCount(rows.size());
        }
        batch.setRowCount(rows.size());
        long before = model.predictCalls();
        try (VectorSchemaRoot out = model.predict(batch)) {
          assertEquals(rows.size(), out.getRowCount());
          Float8Vector first = (Float8Vector) out.getVector(0);
          for (int r = 0; r < rows.size(); r++) {
            double expected = name.equals("s1") ? rows.get(r).s1() : rows.get(r).lgbm();
            assertEquals(Double.doubleToRawLongBits(expected),
                Double.doubleToRawLongBits(first.get(r)), name + " row " + r);
          }
        }
        assertEquals(before + 1, model.predictCalls());
      }
    }
  }

  @Test
  void aMissingFileIsAModelExceptionNamingIt() {
    ModelException e = assertThrows(ModelException.class, () -> NativeModel.load("/nonexistent/m.so"));
    assertTrue(e.getMessage().contains("cannot load model binary '/nonexistent/m.so'"), e.getMessage());
  }

  @Test
  void aWrongSha256IsRefused() {
    String path = Fixtures.built("s1_logistic");
    ModelException e = assertThrows(ModelException.class, () -> NativeModel.load(path, "00".repeat(32)));
    assertTrue(e.getMessage().contains("sha256 is"), e.getMessage());
  }

  @Test
  void aPanicInsideTheModelIsAModelExceptionAndTheJvmGoesOn() {
    try (NativeModel model = NativeModel.load(Fixtures.built("panicking"));
        VectorSchemaRoot batch = VectorSchemaRoot.create(model.inputSchema(), model.allocator())) {
      Float8Vector x = (Float8Vector) batch.getVector(0);
      x.allocateNew(2);
      x.set(0, 1.0);
      x.set(1, -1.0);
      x.setValueCount(2);
      batch.setRowCount(2);
      ModelException e = assertThrows(ModelException.class, () -> model.predict(batch));
      assertTrue(e.getMessage().contains("panicked: negative x at row 1"), e.getMessage());
      // The model still scores good batches afterwards.
      x.set(1, 2.0);
      try (VectorSchemaRoot out = model.predict(batch)) {
        assertEquals(2.0, ((Float8Vector) out.getVector(0)).get(1));
      }
    }
  }

  @Test
  void aNullInANonNullableInputNamesTheColumn() {
    try (NativeModel model = NativeModel.load(Fixtures.built("panicking"));
        VectorSchemaRoot batch = VectorSchemaRoot.create(model.inputSchema(), model.allocator())) {
      Float8Vector x = (Float8Vector) batch.getVector(0);
      x.allocateNew(2);
      x.set(0, 1.0);
      x.setNull(1);
      x.setValueCount(2);
      batch.setRowCount(2);
      ModelException e = assertThrows(ModelException.class, () -> model.predict(batch));
      assertTrue(e.getMessage().contains("column 'x' is not nullable but has 1 null(s), the first at row 1"),
          e.getMessage());
    }
  }

  @Test
  void rowScorerGivesNullAndAReasonForRowsItCannotScore() {
    try (RowScorer scorer = RowScorer.open(Fixtures.built("panicking"), null)) {
      List<Object[]> rows = new ArrayList<>();
      rows.add(new Object[] {1.5});
      rows.add(new Object[] {null});
      rows.add(new Object[] {"abc"});
      rows.add(new Object[] {1.0, 2.0});
      rows.add(new Object[] {3});
      long before = scorer.model().predictCalls();
      RowScorer.Result result = scorer.score(rows);
      assertEquals(before + 1, scorer.model().predictCalls());
      assertEquals(1.5, result.value(0));
      assertNull(result.error(0));
      assertNull(result.value(1));
      // The core's words, as in every host (tests/fixtures/row_checks.json).
      assertEquals("field 'x' is null but the input is not nullable", result.error(1));
      assertEquals("field 'x' is a string, expected float64", result.error(2));
      assertEquals("expected 1 values in the model's input order (x), got 2", result.error(3));
      assertEquals(3.0, result.value(4));
    }
  }

  @Test
  void rowScorerScoresBatchesLargerThanArrowsDefaultCapacity() {
    // Arrow allocates 3,970 values by default; a batch past that must still be filled in full,
    // and the rows it skips (every 7th has a null) must not shift the others' results.
    int n = 10_000;
    try (RowScorer scorer = RowScorer.open(Fixtures.built("panicking"), null)) {
      List<Object[]> rows = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        rows.add(new Object[] {i % 7 == 3 ? null : i * 0.25});
      }
      RowScorer.Result result = scorer.score(rows);
      for (int i = 0; i < n; i++) {
        if (i % 7 == 3) {
          assertNull(result.value(i), "row " + i);
          assertEquals("field 'x' is null but the input is not nullable", result.error(i));
        } else {
          assertEquals(i * 0.25, result.value(i), "row " + i);
        }
      }
    }
  }

  @Test
  void aClosedModelRefusesCalls() {
    NativeModel model = NativeModel.load(Fixtures.built("s1_logistic"));
    model.close();
    ModelException e = assertThrows(ModelException.class, model::infoJson);
    assertTrue(e.getMessage().endsWith("is closed"), e.getMessage());
  }
}
