package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The row checks every streamml host shares, word for word: the table of cases pytest runs through
 * the Python hosts ({@code tests/fixtures/row_checks.json}), through {@link RowScorer#scoreOneNamed}
 * and {@link RowScorer#scoreOne} (the core's one-row path over JNI) with {@link MissingFields#ERROR}
 * and {@link MissingFields#NULL}: the same outputs and the same messages.
 */
class RowChecksTest {
  private static final String[] MODES = {"error", "null"};
  private static final String[] INPUTS = {"x", "f", "n", "u", "b", "s"};

  static JsonNode table() throws IOException {
    String path = System.getProperty("streamml.rowChecks", "../../tests/fixtures/row_checks.json");
    return new ObjectMapper().readTree(Path.of(path).toFile());
  }

  /** A JSON value as a Java host holds it: integers as Long, other numbers as Double. */
  static Object value(JsonNode v) {
    if (v.isNull()) {
      return null;
    }
    if (v.isBoolean()) {
      return v.asBoolean();
    }
    if (v.isIntegralNumber()) {
      return v.asLong();
    }
    if (v.isNumber()) {
      return v.asDouble();
    }
    return v.asText();
  }

  static Map<String, Object> row(JsonNode c) {
    Map<String, Object> row = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = c.path("row").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      row.put(e.getKey(), value(e.getValue()));
    }
    return row;
  }

  static JsonNode outcome(JsonNode c, String mode) {
    JsonNode o = c.path("outcome").path(mode);
    return o.isMissingNode() ? c.path("outcome").path("*") : o;
  }

  /** Check one result against the table's outcome; returns the native calls it should have made. */
  static int check(JsonNode want, RowScorer.Result got, String what) {
    if (want.has("refused")) {
      assertEquals(want.path("refused").asText(), got.error(0), what);
      assertNull(got.outputs(0), what);
      return 0;
    }
    JsonNode scored = want.path("scored");
    assertNull(got.error(0), what);
    Object[] out = got.outputs(0);
    assertEquals(scored.path("y").asDouble(), (Double) out[0], 0.0, what);
    assertEquals(scored.path("nulls").asInt(), out[1], what);
    assertEquals(value(scored.path("echo")), out[2], what);
    return 1;
  }

  @Test
  void theTableOfCasesGivesTheSameOutcomesAsInPython() throws IOException {
    JsonNode table = table();
    int checked = 0;
    for (String mode : MODES) {
      NativeModel model = NativeModel.load(Fixtures.built(table.path("model").asText()));
      try (RowScorer scorer = new RowScorer(model, null, MissingFields.parse(mode))) {
        for (JsonNode c : table.path("cases")) {
          String what = c.path("name").asText() + " " + mode;
          Map<String, Object> row = row(c);
          long before = model.predictCalls();
          int calls = check(outcome(c, mode), scorer.scoreOneNamed(row), what);
          assertEquals(before + calls, model.predictCalls(), what + ": the native one-row path ran");
          if (List.of(INPUTS).stream().allMatch(row::containsKey)) {
            // The same row by position: the same outcome.
            Object[] values = List.of(INPUTS).stream().map(row::get).toArray();
            check(outcome(c, mode), scorer.scoreOne(values), what + " by position");
          }
          checked++;
        }
      }
    }
    assertEquals(2 * table.path("cases").size(), checked);
  }

  @Test
  void javaTypesAreConvertedOrNamed() {
    try (RowScorer scorer = RowScorer.open(Fixtures.built("typed_inputs"), "y")) {
      // Float, Integer, Short and Byte are numbers like Double and Long; a CharSequence is a string.
      RowScorer.Result r = scorer.scoreOne(
          new Object[] {1.5f, 2, (short) 3, (byte) 4, Boolean.TRUE, new StringBuilder("ab")});
      assertNull(r.error(0));
      assertEquals(1.5 + 2 + 3 + 4 + 1 + 2, r.value(0));
      r = scorer.scoreOne(new Object[] {1.0, null, null, null, null, LocalDate.of(2026, 1, 1)});
      assertEquals("field 's' is a LocalDate, expected utf8", r.error(0));
      r = scorer.scoreOne(new Object[] {1.0});
      assertEquals("expected 6 values in the model's input order (x, f, n, u, b, s), got 1", r.error(0));
      r = scorer.scoreOne(null);
      assertEquals("expected 6 values in the model's input order (x, f, n, u, b, s), got 0", r.error(0));
      // A refused row leaves the scorer ready for the next.
      r = scorer.scoreOne(new Object[] {1.0, null, null, null, null, "xyz"});
      assertEquals(4.0, r.value(0));
    }
  }
}
