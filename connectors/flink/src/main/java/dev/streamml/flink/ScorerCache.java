package dev.streamml.flink;

import java.util.HashMap;
import java.util.Map;

/** The models one function instance has opened, by path (usually one). */
final class ScorerCache implements AutoCloseable {
  private final Map<String, RowScorer> scorers = new HashMap<>();

  synchronized RowScorer get(String path) {
    if (path == null) {
      throw new ModelException("the model path argument is null");
    }
    return scorers.computeIfAbsent(path, p -> RowScorer.open(p, null));
  }

  @Override
  public synchronized void close() {
    for (RowScorer s : scorers.values()) {
      s.close();
    }
    scorers.clear();
  }
}
