package dev.streamml.flink;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.types.Row;

/**
 * The lifecycle tests' model versions (make_fixtures.py: {@code versions/1..4.so}, inputs x0..x3,
 * first output {@code probability}), model directories of them, and their scores computed
 * directly through {@link RowScorer}.
 */
final class Versions {
  static final int FEATURES = 4;

  private Versions() {}

  static Path binary(String version) {
    return Fixtures.dir().resolve("versions").resolve(version + ".so").toAbsolutePath();
  }

  /** A model directory in {@code dir} holding versions 1-4, with {@code champion} at 1. */
  static Path directory(Path dir) {
    try {
      Files.createDirectories(dir);
      for (String v : List.of("1", "2", "3", "4")) {
        Files.copy(binary(v), dir.resolve(v + ".so"));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    ModelReference.setAlias(dir, "champion", "1");
    return dir;
  }

  /** A version whose binary is garbage (a truncated copy of version 1). */
  static void corrupt(Path dir, String version) {
    try {
      byte[] bytes = Files.readAllBytes(binary("1"));
      Files.write(dir.resolve(version + ".so"), java.util.Arrays.copyOf(bytes, bytes.length / 3));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The features of event {@code id}. */
  static double[] features(long id) {
    double[] x = new double[FEATURES];
    for (int j = 0; j < FEATURES; j++) {
      x[j] = 2 * Math.sin(id * 0.37 + j * 1.3);
    }
    return x;
  }

  static RowTypeInfo inputType() {
    TypeInformation<?>[] types = new TypeInformation<?>[FEATURES + 1];
    String[] names = new String[FEATURES + 1];
    types[0] = Types.LONG;
    names[0] = "id";
    for (int j = 0; j < FEATURES; j++) {
      types[j + 1] = Types.DOUBLE;
      names[j + 1] = "x" + j;
    }
    return new RowTypeInfo(types, names);
  }

  static Row row(long id) {
    double[] x = features(id);
    Row r = new Row(FEATURES + 1);
    r.setField(0, id);
    for (int j = 0; j < FEATURES; j++) {
      r.setField(j + 1, x[j]);
    }
    return r;
  }

  /** Each version's first output for events {@code 0..n-1}, scored directly. */
  static Map<String, double[]> expected(int n, List<String> versions) {
    Map<String, double[]> out = new HashMap<>();
    for (String v : versions) {
      try (RowScorer scorer = RowScorer.open(binary(v).toString(), null)) {
        List<Object[]> rows = new ArrayList<>();
        for (int id = 0; id < n; id++) {
          Object[] x = new Object[FEATURES];
          double[] f = features(id);
          for (int j = 0; j < FEATURES; j++) {
            x[j] = f[j];
          }
          rows.add(x);
        }
        RowScorer.Result result = scorer.score(rows);
        double[] scores = new double[n];
        for (int id = 0; id < n; id++) {
          scores[id] = ((Number) result.value(id)).doubleValue();
        }
        out.put(v, scores);
      }
    }
    return out;
  }
}
