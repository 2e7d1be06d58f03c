package dev.streamml.flink;

import java.util.HashMap;
import java.util.Map;

/**
 * The {@link RowScorer}s one function instance has opened, by model path (usually one). Not
 * thread-safe: Flink calls a function's {@code open}, {@code eval} and {@code close} from its task
 * thread only.
 */
final class RowScorerCache implements AutoCloseable {
  private final Map<String, RowScorer> scorers = new HashMap<>();
  /** The last path looked up and its scorer: every call of a query names the same model. */
  private String lastPath;
  private RowScorer last;

  RowScorer get(String path) {
    if (path == null) {
      throw new ModelException("the model path argument is null");
    }
    if (path.equals(lastPath)) {
      return last;
    }
    RowScorer scorer = scorers.computeIfAbsent(path, p -> RowScorer.open(p, null));
    lastPath = path;
    last = scorer;
    return scorer;
  }

  @Override
  public void close() {
    lastPath = null;
    last = null;
    for (RowScorer s : scorers.values()) {
      s.close();
    }
    scorers.clear();
  }
}
