package dev.streamml.flink.bench;

import dev.streamml.flink.BatchPolicy;
import dev.streamml.flink.ModelLifecycle;
import dev.streamml.flink.ModelReference;
import dev.streamml.flink.StreammlStreams;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.types.Row;

/**
 * The cost of model references in the DataStream step (issue 26), rows/s per slot (parallelism 1,
 * a local MiniCluster), cases interleaved in each run: a fixed binary's path (as before); the same
 * binary as the champion of a model directory resolved once (outputs name their version), and
 * re-resolved every 100 ms (no swap happens); and the
 * champion with one challenger of the same size in shadow (both sides sunk). The model is version
 * 1 of the lifecycle tests (a logistic model on 4 inputs, target/fixtures/versions).
 *
 * <p>Arguments: VERSIONS_DIR ROWS RUNS [sql] ({@code benchmarks/lifecycle_flink.py} runs it).
 * Prints one line per case and run, then per case the median rows/s, the median rows per CPU
 * second of the process (the MiniCluster runs in it: CPU time is what a shared machine's noise
 * disturbs least), and the medians of the per-run ratios to the fixed path.
 *
 * <p>With {@code sql}: Flink SQL's {@code ML_PREDICT} (async, then sync) on the model directory,
 * champion only against champion + 1 challenger of the same size (the {@code shadow} column
 * UNNESTed into a second sink table by a STATEMENT SET, as docs/lifecycle.md shows), into blackhole
 * tables; besides rows/s it prints the process CPU time per row (the MiniCluster runs in this JVM)
 * and each shadow case's ratio to its champion-only case (the bound: at most 2.1x).
 */
public final class FlinkLifecycleBench {
  public static void main(String[] args) throws Exception {
    Path versions = Path.of(args[0]);
    long rows = Long.parseLong(args[1]);
    int runs = Integer.parseInt(args[2]);
    Path dir = Files.createTempDirectory("streamml-bench-models");
    Files.copy(versions.resolve("1.so"), dir.resolve("1.so"));
    Files.copy(versions.resolve("2.so"), dir.resolve("2.so"));
    ModelReference.setAlias(dir, "champion", "1");
    ModelReference.setAlias(dir, "challenger", "2");
    if (args.length > 3 && args[3].equals("sql")) {
      sql(dir, rows, runs);
      return;
    }
    Map<String, ModelLifecycle> cases = new LinkedHashMap<>();
    cases.put("fixed path", null);
    // Resolved once: the same step (a model_version column on every output) without the reload
    // check, so the two directory cases tell the check's cost from the column's.
    cases.put("model directory, resolved once (model_version column)",
        ModelLifecycle.of(dir.toString()).reloadEvery(null));
    cases.put("model directory, reload 100 ms, no swap",
        ModelLifecycle.of(dir.toString()).reloadEvery(Duration.ofMillis(100)));
    cases.put("champion + 1 challenger (shadow)", ModelLifecycle.of(dir.toString())
        .reloadEvery(Duration.ofMillis(100)).withChallengers(List.of(dir + "@challenger")));
    Map<String, List<double[]>> runsOf = new LinkedHashMap<>();
    cases.keySet().forEach(k -> runsOf.put(k, new ArrayList<>()));
    for (int run = -1; run < runs; run++) { // run -1 warms up
      List<Map.Entry<String, ModelLifecycle>> order = new ArrayList<>(cases.entrySet());
      java.util.Collections.rotate(order, Math.max(run, 0)); // no case always runs first
      for (Map.Entry<String, ModelLifecycle> c : order) {
        double[] t = job(dir.resolve("1.so").toString(), c.getValue(), rows);
        if (run >= 0) {
          runsOf.get(c.getKey()).add(t);
          System.out.printf("%s\t%d\t%.0f rows/s\t%.0f rows/CPU-s%n", c.getKey(), run, rows / t[0], rows / t[1]);
        }
      }
    }
    List<double[]> base = runsOf.get("fixed path");
    System.out.println("| case | rows/s (median of " + runs + ") | rows per CPU-s (median) | vs fixed path, "
        + "wall (median of per-run ratios) | vs fixed path, CPU |");
    System.out.println("|---|---:|---:|---:|---:|");
    for (Map.Entry<String, List<double[]>> e : runsOf.entrySet()) {
      List<Double> wall = new ArrayList<>();
      List<Double> cpu = new ArrayList<>();
      List<Double> wallRatio = new ArrayList<>();
      List<Double> cpuRatio = new ArrayList<>();
      for (int i = 0; i < e.getValue().size(); i++) {
        double[] t = e.getValue().get(i);
        wall.add(rows / t[0]);
        cpu.add(rows / t[1]);
        wallRatio.add(base.get(i)[0] / t[0]);
        cpuRatio.add(base.get(i)[1] / t[1]);
      }
      System.out.printf("| %s | %.0f | %.0f | %.3f | %.3f |%n", e.getKey(), median(wall), median(cpu),
          median(wallRatio), median(cpuRatio));
    }
  }

  /** One job: its wall time and the process's CPU time (every thread: the MiniCluster runs here). */
  private static double[] job(String path, ModelLifecycle models, long rows) throws Exception {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    env.getConfig().enableObjectReuse();
    TypeInformation<?>[] types = {Types.LONG, Types.DOUBLE, Types.DOUBLE, Types.DOUBLE, Types.DOUBLE};
    RowTypeInfo type = new RowTypeInfo(types, new String[] {"id", "x0", "x1", "x2", "x3"});
    DataStream<Row> in = env.fromSequence(0, rows - 1)
        .map(id -> Row.of(id, (id % 97) / 50.0, (id % 89) / 45.0, (id % 83) / 40.0, (id % 79) / 35.0))
        .returns(type);
    BatchPolicy policy = new BatchPolicy(1024, Duration.ofMillis(20));
    if (models == null) {
      StreammlStreams.predict("score", in, path, policy).sinkTo(new DiscardingSink<>());
    } else {
      StreammlStreams.Predictions p = StreammlStreams.predict("score", in, models, policy);
      p.oks().sinkTo(new DiscardingSink<>());
      if (p.shadow() != null) {
        p.shadow().sinkTo(new DiscardingSink<>());
      }
    }
    com.sun.management.OperatingSystemMXBean os =
        (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    long cpu = os.getProcessCpuTime();
    long start = System.nanoTime();
    env.execute("lifecycle bench");
    return new double[] {(System.nanoTime() - start) / 1e9, (os.getProcessCpuTime() - cpu) / 1e9};
  }

  /** The SQL cases: name -> {async, with a challenger, shadow rows sunk}. */
  private static void sql(Path dir, long rows, int runs) throws Exception {
    Map<String, boolean[]> cases = new LinkedHashMap<>();
    cases.put("ML_PREDICT async, champion only", new boolean[] {true, false, false});
    cases.put("ML_PREDICT async, champion + 1 challenger, shadow column not sunk", new boolean[] {true, true, false});
    cases.put("ML_PREDICT async, champion + 1 challenger, shadow UNNESTed into a 2nd sink", new boolean[] {true, true, true});
    cases.put("ML_PREDICT sync, champion only", new boolean[] {false, false, false});
    cases.put("ML_PREDICT sync, champion + 1 challenger, shadow column not sunk", new boolean[] {false, true, false});
    cases.put("ML_PREDICT sync, champion + 1 challenger, shadow UNNESTed into a 2nd sink", new boolean[] {false, true, true});
    Map<String, List<Double>> rates = new LinkedHashMap<>();
    Map<String, List<Double>> cpu = new LinkedHashMap<>();
    com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean)
        java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    for (int run = -1; run < runs; run++) { // run -1 warms up
      for (Map.Entry<String, boolean[]> c : cases.entrySet()) {
        boolean async = c.getValue()[0];
        long cpuBefore = os.getProcessCpuTime();
        double seconds = sqlJob(dir, async, c.getValue()[1], c.getValue()[2], async ? rows : rows / 5);
        double cpuNsPerRow = (os.getProcessCpuTime() - cpuBefore) / (double) (async ? rows : rows / 5);
        if (run >= 0) {
          double rate = (async ? rows : rows / 5) / seconds;
          rates.computeIfAbsent(c.getKey(), k -> new ArrayList<>()).add(rate);
          cpu.computeIfAbsent(c.getKey(), k -> new ArrayList<>()).add(cpuNsPerRow);
          System.out.printf("%s\t%d\t%.0f rows/s\t%.0f CPU ns/row%n", c.getKey(), run, rate, cpuNsPerRow);
        }
      }
    }
    System.out.println("| case | rows/s (median of " + runs + ") | CPU ns/row (median) | CPU per row vs champion only |");
    System.out.println("|---|---:|---:|---:|");
    String base = null;
    for (String name : cases.keySet()) {
      if (name.endsWith("champion only")) {
        base = name;
      }
      double ratio = median(cpu.get(name)) / median(cpu.get(base));
      System.out.printf("| %s | %.0f | %.0f | %.2f |%n", name, median(rates.get(name)), median(cpu.get(name)), ratio);
    }
  }

  private static double sqlJob(Path dir, boolean async, boolean challenger, boolean sinkShadow, long rows)
      throws Exception {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    org.apache.flink.table.api.bridge.java.StreamTableEnvironment tEnv =
        org.apache.flink.table.api.bridge.java.StreamTableEnvironment.create(env);
    TypeInformation<?>[] types = {Types.LONG, Types.DOUBLE, Types.DOUBLE, Types.DOUBLE, Types.DOUBLE};
    RowTypeInfo type = new RowTypeInfo(types, new String[] {"id", "x0", "x1", "x2", "x3"});
    tEnv.createTemporaryView("t", tEnv.fromDataStream(env.fromSequence(0, rows - 1)
        .map(id -> Row.of(id, (id % 97) / 50.0, (id % 89) / 45.0, (id % 83) / 40.0, (id % 79) / 35.0))
        .returns(type)));
    String shadow = challenger ? ", shadow ARRAY<ROW<model_version STRING, probability DOUBLE>>" : "";
    tEnv.executeSql("CREATE MODEL m INPUT (x0 DOUBLE, x1 DOUBLE, x2 DOUBLE, x3 DOUBLE) OUTPUT (probability DOUBLE,"
        + " model_version STRING" + shadow + ") WITH ('provider' = 'streamml', 'path' = '" + dir + "',"
        + " 'reload-interval' = '100 ms', 'max-batch-rows' = '1024', 'max-wait' = '20 ms'"
        + (challenger ? ", 'challengers' = '" + dir + "@challenger'" : "") + ")");
    tEnv.executeSql("CREATE TABLE served (id BIGINT, probability DOUBLE, model_version STRING)"
        + " WITH ('connector' = 'blackhole')");
    tEnv.executeSql("CREATE TABLE shadow_scores (id BIGINT, model_version STRING, probability DOUBLE)"
        + " WITH ('connector' = 'blackhole')");
    tEnv.executeSql("CREATE TEMPORARY VIEW scored AS SELECT * FROM ML_PREDICT(TABLE t, MODEL m,"
        + " DESCRIPTOR(x0, x1, x2, x3), MAP['async', '" + async + "', 'max-concurrent-operations', '4096'])");
    String insertServed = "INSERT INTO served SELECT id, probability, model_version FROM scored;";
    String statement = !sinkShadow ? insertServed : "EXECUTE STATEMENT SET BEGIN " + insertServed
        + " INSERT INTO shadow_scores SELECT s.id, v.model_version, v.probability FROM scored AS s"
        + " CROSS JOIN UNNEST(s.shadow) AS v(model_version, probability); END";
    long start = System.nanoTime();
    tEnv.executeSql(statement).await();
    return (System.nanoTime() - start) / 1e9;
  }

  private static double median(List<Double> xs) {
    List<Double> s = new ArrayList<>(xs);
    s.sort(null);
    return s.get(s.size() / 2);
  }
}
