package dev.streamml.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The micro-batching rule: the table of cases pytest runs against {@code streamml.batching}
 * ({@code tests/fixtures/batching.json}), here against {@link MicroBatcher}: the same batches.
 */
class MicroBatcherTest {
  static JsonNode table() throws IOException {
    String path = System.getProperty("streamml.batching", "../../tests/fixtures/batching.json");
    return new ObjectMapper().readTree(Path.of(path).toFile());
  }

  static Stream<Arguments> cases() throws IOException {
    List<Arguments> out = new ArrayList<>();
    for (JsonNode c : table().get("cases")) {
      out.add(Arguments.of(c.get("name").asText(), c));
    }
    return out.stream();
  }

  /** Milliseconds of the table in nanoseconds (as the pytest test converts them). */
  static long ns(JsonNode ms) {
    return Math.round(ms.asDouble() * 1e6);
  }

  @Test
  void theDefaultsAreTheTables() throws IOException {
    JsonNode d = table().get("defaults");
    assertEquals(new BatchPolicy(d.get("max_batch_rows").asInt(), Duration.ofNanos(ns(d.get("max_wait_ms")))),
        BatchPolicy.DEFAULT);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void theCase(String name, JsonNode c) {
    BatchPolicy policy = new BatchPolicy(c.get("max_batch_rows").asInt(), Duration.ofNanos(ns(c.get("max_wait_ms"))));
    JsonNode resume = c.get("resume");
    MicroBatcher b = resume == null ? new MicroBatcher(policy)
        : new MicroBatcher(policy, resume.get("pending").asInt(), ns(resume.get("first_ms")));
    int i = 0;
    for (JsonNode e : c.get("events")) {
      String where = "event " + i++ + " " + e;
      long now = e.has("at_ms") ? ns(e.get("at_ms")) : 0;
      JsonNode expect = e.get("expect");
      switch (e.get("op").asText()) {
        case "add" -> {
          int[] want = new int[expect.size()];
          for (int k = 0; k < want.length; k++) {
            want[k] = expect.get(k).asInt();
          }
          assertArrayEquals(want, b.add(e.get("rows").asInt(), now), where);
        }
        case "poll" -> assertEquals(expect.asInt(), b.poll(now), where);
        case "flush" -> assertEquals(expect.asInt(), b.flush(), where);
        case "due_in" -> {
          long due = b.dueIn(now);
          assertEquals(expect.isNull() ? -1 : ns(expect), due, where);
        }
        case "is_due" -> assertEquals(expect.asBoolean(), b.isDue(now), where);
        default -> fail(where + ": unknown op; expected add, poll, flush, due_in or is_due");
      }
      if (e.has("pending")) {
        assertEquals(e.get("pending").asInt(), b.pending(), where);
      }
      if (e.has("deadline_ms")) {
        JsonNode deadline = e.get("deadline_ms");
        if (deadline.isNull()) {
          assertEquals(0, b.pending(), where + ": none wait, so no deadline");
        } else {
          assertEquals(ns(deadline), b.deadline(), where);
        }
      }
    }
  }

  @Test
  void badPoliciesAreRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new BatchPolicy(0, Duration.ZERO));
    assertEquals("max_batch_rows must be at least 1, got 0", e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> new BatchPolicy(1, Duration.ofMillis(-1)));
    assertEquals("max_wait must not be negative, got PT-0.001S", e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> new BatchPolicy(1, null));
    assertEquals("max_wait must be a java.time.Duration, got null", e.getMessage());
  }
}
