package dev.streamml.flink;

import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/** The fixtures src/test/python/make_fixtures.py wrote (rows and Python's predictions). */
final class Fixtures {
  static final int FEATURES = 32;

  /** One row: id, features, and each model's first output as Python's Model.predict gave it. */
  record FixtureRow(int id, double[] features, double s1, double lgbm) {
    Object[] boxed() {
      Object[] out = new Object[FEATURES];
      for (int i = 0; i < FEATURES; i++) {
        out[i] = features[i];
      }
      return out;
    }
  }

  private Fixtures() {}

  static Path dir() {
    return Path.of(System.getProperty("streamml.fixtures", "target/fixtures"));
  }

  static String model(String name) {
    Properties p = new Properties();
    try (Reader r = Files.newBufferedReader(dir().resolve("models.properties"))) {
      p.load(r);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return p.getProperty(name);
  }

  /** A model binary that `make models` builds into build/models. */
  static String built(String name) {
    return Path.of(System.getProperty("streamml.models", "../../build/models"))
        .resolve(name + ".so").toAbsolutePath().toString();
  }

  static List<FixtureRow> rows() {
    try {
      List<String> lines = Files.readAllLines(dir().resolve("rows.tsv"));
      List<FixtureRow> rows = new ArrayList<>();
      for (String line : lines.subList(1, lines.size())) {
        String[] cells = line.split("\t");
        double[] features = new double[FEATURES];
        for (int i = 0; i < FEATURES; i++) {
          features[i] = fromBits(cells[1 + i]);
        }
        rows.add(new FixtureRow(Integer.parseInt(cells[0]), features,
            fromBits(cells[1 + FEATURES]), fromBits(cells[2 + FEATURES])));
      }
      return rows;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static double fromBits(String hex) {
    return Double.longBitsToDouble(Long.parseUnsignedLong(hex, 16));
  }

  /** "x0, x1, ..., x31". */
  static String featureList() {
    return IntStream.range(0, FEATURES).mapToObj(i -> "x" + i).collect(Collectors.joining(", "));
  }
}
