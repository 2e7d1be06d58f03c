package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.vector.types.pojo.Field;
import org.junit.jupiter.api.Test;

/**
 * Absent is not null, in the Flink row path: the table of cases pytest runs through every Python
 * host ({@code tests/fixtures/missing_fields.json}), through {@link RowScorer#scoreNamed} with
 * {@link MissingFields#ERROR} and {@link MissingFields#NULL}: the same outcomes and messages.
 */
class MissingFieldsTest {
  private static final String[] MODES = {"error", "null"};

  static JsonNode table() throws IOException {
    String path = System.getProperty("streamml.missingFields", "../../tests/fixtures/missing_fields.json");
    return new ObjectMapper().readTree(Path.of(path).toFile());
  }

  static String field(List<Field> inputs, String token) {
    return token.startsWith("$") ? inputs.get(Integer.parseInt(token.substring(1))).getName() : token;
  }

  /** The case's event, built as the table says. */
  static Map<String, Object> event(List<Field> inputs, JsonNode c) {
    Map<String, Object> e = new LinkedHashMap<>();
    if (c.path("empty").asBoolean(false)) {
      return e;
    }
    for (int i = 0; i < inputs.size(); i++) {
      e.put(inputs.get(i).getName(), (i + 1) / 10.0);
    }
    for (JsonNode token : c.path("drop")) {
      e.remove(field(inputs, token.asText()));
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = c.path("set").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> set = it.next();
      Object value = set.getValue().isNull() ? null
          : set.getValue().isNumber() ? (Object) set.getValue().asDouble() : set.getValue().asText();
      if (set.getKey().equals("*")) {
        for (Field f : inputs) {
          e.put(f.getName(), value);
        }
      } else {
        e.put(field(inputs, set.getKey()), value);
      }
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = c.path("rename").fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> rename = it.next();
      e.put(rename.getValue().asText(), e.remove(field(inputs, rename.getKey())));
    }
    return e;
  }

  static String expected(JsonNode table, List<Field> inputs, JsonNode c, String mode) {
    JsonNode outcome = c.path("outcome").path(mode);
    if (outcome.isNull()) {
      return null;
    }
    String[] parts = outcome.asText().split(" ");
    assertEquals("absent", parts[0]);
    return table.path("absent").asText().replace("$", field(inputs, parts[1]));
  }

  @Test
  void theTableOfCasesGivesTheSameOutcomesAsInPython() throws IOException {
    JsonNode table = table();
    String model = Fixtures.model("lgbm");
    int checked = 0;
    for (String mode : MODES) {
      try (RowScorer scorer = new RowScorer(NativeModel.load(model), null, MissingFields.parse(mode))) {
        List<Field> inputs = scorer.model().inputSchema().getFields();
        for (Field f : inputs) {
          assertEquals(true, f.isNullable(), f.getName());
        }
        List<Map<String, Object>> events = new ArrayList<>();
        Map<String, Integer> index = new HashMap<>();
        for (JsonNode c : table.path("cases")) {
          index.put(c.path("name").asText(), events.size());
          events.add(event(inputs, c));
        }
        // All cases in one batch: a refused row does not stop the others.
        RowScorer.Result batch = scorer.scoreNamed(events);
        for (JsonNode c : table.path("cases")) {
          String name = c.path("name").asText();
          int i = index.get(name);
          RowScorer.Result alone = scorer.scoreNamed(List.of(events.get(i)));
          String reason = expected(table, inputs, c, mode);
          assertEquals(reason, batch.error(i), name + " " + mode);
          assertEquals(reason, alone.error(0), name + " " + mode);
          if (reason == null) {
            assertNotNull(batch.value(i), name);
            assertEquals(batch.value(i), alone.value(0), name);
            if (c.has("scoresAs") || c.has("scores_as")) {
              int same = index.get(c.path("scores_as").asText());
              try (RowScorer strict = new RowScorer(NativeModel.load(model), null)) {
                assertEquals(strict.scoreNamed(List.of(events.get(same))).value(0), batch.value(i), name);
              }
            }
          } else {
            assertNull(batch.value(i), name);
          }
          checked++;
        }
      }
    }
    assertEquals(2 * table.path("cases").size(), checked);
  }

  @Test
  void anUnknownModeIsRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MissingFields.parse("maybe"));
    assertEquals("missing_fields is 'maybe', expected \"error\" (an absent input field refuses the event) or "
        + "\"null\" (an absent input field is read as null)", e.getMessage());
  }
}
