package dev.streamml.flink.bench;

import dev.streamml.flink.BatchPolicy;
import dev.streamml.flink.BatchingPredictFunction;
import dev.streamml.flink.PredictFunction;
import dev.streamml.flink.StreammlStreams;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;

/**
 * Rows/s per slot (parallelism 1, a local MiniCluster) scoring R1 rows through Flink SQL: no model
 * (the pipe's ceiling), an async function without a model ({@link AsyncSum}: the ceiling of the
 * async path), the per-row function, the batching function and ML_PREDICT (per row, and async
 * batched).
 * Driven by benchmarks/flink_r1.py, which writes the rows and prints the table.
 *
 * <p>Arguments: MODEL ROWS_FILE (float64 little-endian, row-major, 32 per row) RUNS [GENERATED
 * [HASHED_INPUTS]]. Prints one line per case and run: {@code case<TAB>seconds}. With GENERATED &gt;
 * 0 the cases run again on GENERATED rows made inside the job (every case on all of them): no
 * rows are serialised into the job graph, so start-up weighs little. Two
 * sources make them: {@code datagen}, Flink's datagen connector drawing 32 doubles uniform in [-3,
 * 3] (a random draw and a boxed Double per value: it costs more per row than the model), and
 * {@code hashed}, a datagen table of the sequence id alone under a view whose 32 inputs are the
 * SQL expressions HASHED_INPUTS computes from {@code id} (a few integer operations per value). Those
 * lines are {@code generated<TAB>source<TAB>case<TAB>rows<TAB>seconds}, and there are two more cases
 * per source: the same rows as a DataStream ({@code toDataStream}, copied into rows of a {@link
 * RowTypeInfo}) into a discarding sink, without a model and through {@link StreammlStreams#predict}
 * (the DataStream operator, its buffer in checkpointed state). Before the runs it prints the
 * hashed view's first and last rows, {@code sample<TAB>id<TAB>x0<TAB>...<TAB>x31} (the
 * inputs by {@link Double#toHexString}), so the driver can
 * check that its own copy of the formula gives the same values.
 *
 * <p>Every job runs with {@code pipeline.object-reuse} on and {@code
 * table.exec.async-scalar.max-concurrent-operations} at eight times the batch size, no retry strategy
 * and no timeout (see {@link #config()}).
 */
public final class FlinkR1Bench {
  private static final int FEATURES = 32;
  /** The batching function's max_batch_rows ({@code -Dbench.batch-rows}, default 1024). */
  private static final int BATCH_ROWS = Integer.getInteger("bench.batch-rows", 1024);

  public static void main(String[] args) throws Exception {
    String model = args[0];
    List<Row> rows = readRows(Path.of(args[1]));
    int runs = Integer.parseInt(args[2]);
    long generated = args.length > 3 ? Long.parseLong(args[3]) : 0;
    String hashed = args.length > 4 ? args[4] : null;
    String features = IntStream.range(0, FEATURES).mapToObj(i -> "x" + i).collect(Collectors.joining(", "));
    String inputs = IntStream.range(0, FEATURES).mapToObj(i -> "x" + i + " DOUBLE").collect(Collectors.joining(", "));
    String sum = IntStream.range(0, FEATURES).mapToObj(i -> "x" + i).collect(Collectors.joining(" + "));
    List<String> sources = new ArrayList<>(List.of("datagen"));
    if (hashed != null) {
      sources.add("hashed");
      printSample(hashed, generated);
    }
    String[][] base = {
      // The pipe reads every input (their sum), so a source that computes them computes them all.
      {"no model (Flink pipe)", "SELECT id, " + sum + " AS p FROM t"},
      {"async no-op AsyncScalarFunction", "SELECT id, async_sum(" + features + ") AS p FROM t"},
      {"per-row ScalarFunction", "SELECT id, streamml_predict('" + model + "', " + features + ") FROM t"},
      {"batching AsyncScalarFunction", "SELECT id, streamml_predict_batched('" + model + "', " + features + ") FROM t"},
      {"ML_PREDICT (sync, per row)", "SELECT id, probability FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR("
          + features + "), MAP['async', 'false'])"},
      {"ML_PREDICT (async, batched)", "SELECT id, probability FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR("
          + features + "), MAP['async', 'true', 'max-concurrent-operations', '2048'])"},
    };
    // -Dbench.variants=NAME=ROWS/CAPACITY;... adds a batching case per variant, right after the
    // batching case: max_batch_rows ROWS and table.exec.async-scalar.max-concurrent-operations
    // CAPACITY (to compare settings in the same run).
    List<String[]> caseList = new ArrayList<>();
    for (String[] c : base) {
      caseList.add(new String[] {c[0], c[1], null});
      if (c[0].equals("batching AsyncScalarFunction")) {
        for (String v : System.getProperty("bench.variants", "").split(";")) {
          if (!v.isBlank()) {
            String[] nv = v.split("=");
            caseList.add(new String[] {c[0] + " " + nv[0], c[1], nv[1]});
          }
        }
      }
    }
    String[][] cases = caseList.toArray(new String[0][]);
    // -Dbench.cases=REGEX runs only the cases whose names match (to try settings on a few),
    // -Dbench.sources=REGEX only the generated sources that match, -Dbench.collection=false none
    // of the runs on the rows file.
    String only = System.getProperty("bench.cases", ".*");
    sources.removeIf(s -> !s.matches(System.getProperty("bench.sources", ".*")));
    boolean collection = Boolean.parseBoolean(System.getProperty("bench.collection", "true"));
    // Run 0 warms the JVM and the planner up (the first job also starts class loading); not printed.
    for (int run = -1; run < runs; run++) {
      for (String[] c : cases) {
        int batchRows = c[2] == null ? BATCH_ROWS : Integer.parseInt(c[2].split("/")[0]);
        capacity = c[2] == null ? null : c[2].split("/")[1];
        StreamTableEnvironment tEnv = env(rows);
        tEnv.createTemporarySystemFunction("streamml_predict", PredictFunction.class);
        tEnv.createTemporarySystemFunction("async_sum", AsyncSum.class);
        tEnv.createTemporarySystemFunction("streamml_predict_batched",
            new BatchingPredictFunction(new BatchPolicy(batchRows, Duration.ofMillis(20))));
        tEnv.executeSql("CREATE MODEL m INPUT (" + inputs + ") OUTPUT (probability DOUBLE) WITH ("
            + "'provider' = 'streamml', 'path' = '" + model + "', 'max-batch-rows' = '1024', 'max-wait' = '20 ms')");
        tEnv.executeSql("CREATE TABLE sink (id BIGINT, p DOUBLE) WITH ('connector' = 'blackhole')");
        long start;
        double seconds;
        if (c[0].matches(only) && collection) {
          start = System.nanoTime();
          tEnv.executeSql("INSERT INTO sink " + c[1]).await();
          seconds = (System.nanoTime() - start) / 1e9;
          if (run >= 0) {
            System.out.println(c[0] + "\t" + seconds);
          }
        }
        for (String source : generated > 0 ? sources : List.<String>of()) {
          for (boolean withModel : c == cases[cases.length - 1] ? new boolean[] {false, true} : new boolean[0]) {
            String name = withModel ? "DataStream StreammlStreams.predict" : "DataStream pipe, no model";
            if (name.matches(only)) {
              ThreadCpu.start();
              long cpu = cpuNanos();
              double took = dataStream(model, source, generated, inputs, hashed, withModel);
              if (run >= 0) {
                System.out.println("generated\t" + source + "\t" + name + "\t" + generated + "\t" + took);
                printCpu(source, name, generated, cpu);
              }
              ThreadCpu.print(run >= 0, source, name);
            }
          }
          if (!c[0].matches(only)) {
            continue;
          }
          // Every case on the same rows: the per-row ones too, so job start-up weighs alike.
          long n = generated;
          String g = generatedSource(tEnv, source, 0, n - 1, inputs, hashed);
          ThreadCpu.start();
          long cpu = cpuNanos();
          start = System.nanoTime();
          tEnv.executeSql("INSERT INTO sink " + c[1].replace("FROM t", "FROM " + g).replace("TABLE t,", "TABLE " + g + ",")).await();
          seconds = (System.nanoTime() - start) / 1e9;
          if (run >= 0) {
            System.out.println("generated\t" + source + "\t" + c[0] + "\t" + n + "\t" + seconds);
            printCpu(source, c[0], n, cpu);
          }
          ThreadCpu.print(run >= 0, source, c[0]);
        }
      }
    }
  }

  /** CPU time of this process (every thread of the MiniCluster's jobs), ns. */
  private static long cpuNanos() {
    return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
        .getOperatingSystemMXBean()).getProcessCpuTime();
  }

  /**
   * {@code cpu<TAB>source<TAB>case<TAB>rows<TAB>cpu seconds} since {@code since}: on a machine
   * whose cores other work keeps busy, the CPU a job takes says more than its wall time.
   */
  private static void printCpu(String source, String name, long rows, long since) {
    System.out.println("cpu\t" + source + "\t" + name + "\t" + rows + "\t" + (cpuNanos() - since) / 1e9);
  }

  /**
   * A table of the ids {@code first..last} and their inputs, named after the source: {@code
   * datagen} (32 random inputs), or {@code hashed} (a view computing the inputs from the id by
   * {@code hashed}'s expressions). Returns its name.
   */
  private static String generatedSource(
      StreamTableEnvironment tEnv, String source, long first, long last, String inputs, String hashed) {
    tEnv.executeSql("DROP TEMPORARY VIEW IF EXISTS " + source);
    tEnv.executeSql("DROP TEMPORARY TABLE IF EXISTS " + source);
    tEnv.executeSql("DROP TEMPORARY TABLE IF EXISTS ids");
    if (source.equals("datagen")) {
      tEnv.executeSql(datagen(source, first, last, inputs));
    } else {
      tEnv.executeSql(datagen("ids", first, last, ""));
      tEnv.executeSql("CREATE TEMPORARY VIEW " + source + " AS SELECT id, " + hashed + " FROM ids");
    }
    return source;
  }

  /** Print the hashed view's first and last 100 rows of {@code generated} (or 1000). */
  private static void printSample(String hashed, long generated) throws Exception {
    long last = Math.max(generated, 1000) - 1;
    for (long first : new long[] {0, last - 99}) {
      StreamTableEnvironment tEnv = StreamTableEnvironment.create(environment());
      String g = generatedSource(tEnv, "hashed", first, first + 99, "", hashed);
      try (var rows = tEnv.executeSql("SELECT * FROM " + g).collect()) {
        while (rows.hasNext()) {
          Row row = rows.next();
          StringBuilder line = new StringBuilder("sample\t").append(row.getField(0));
          for (int i = 1; i <= FEATURES; i++) {
            line.append('\t').append(Double.toHexString((Double) row.getField(i)));  // exact
          }
          System.out.println(line);
        }
      }
    }
  }

  /** Seconds of a DataStream job over {@code rows} generated rows, through the model or not. */
  private static double dataStream(
      String model, String source, long rows, String inputs, String hashed, boolean withModel)
      throws Exception {
    StreamExecutionEnvironment env = environment();
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    String g = generatedSource(tEnv, source, 0, rows - 1, inputs, hashed);
    RowTypeInfo type = rowType();
    DataStream<Row> stream = tEnv.toDataStream(tEnv.from(g)).map(r -> {
      Row out = new Row(FEATURES + 1);
      for (int i = 0; i <= FEATURES; i++) {
        out.setField(i, r.getField(i));
      }
      return out;
    }, type);
    if (withModel) {
      stream = StreammlStreams.predict("score", stream, model, new BatchPolicy(1024, Duration.ofMillis(20)));
    }
    stream.sinkTo(new DiscardingSink<>());
    long start = System.nanoTime();
    env.execute("FlinkR1Bench DataStream");
    return (System.nanoTime() - start) / 1e9;
  }

  /** id BIGINT and x0..x31 DOUBLE. */
  private static RowTypeInfo rowType() {
    TypeInformation<?>[] types = new TypeInformation<?>[FEATURES + 1];
    String[] names = new String[FEATURES + 1];
    types[0] = Types.LONG;
    names[0] = "id";
    for (int i = 0; i < FEATURES; i++) {
      types[i + 1] = Types.DOUBLE;
      names[i + 1] = "x" + i;
    }
    return new RowTypeInfo(types, names);
  }

  /**
   * A datagen table of the sequence ids {@code first..last} and, unless {@code inputs} is empty,
   * the inputs uniform in [-3, 3].
   */
  private static String datagen(String name, long first, long last, String inputs) {
    StringBuilder ddl = new StringBuilder("CREATE TEMPORARY TABLE " + name + " (id BIGINT"
        + (inputs.isEmpty() ? "" : ", " + inputs) + ") WITH ('connector' = 'datagen', 'rows-per-second' ="
        + " '1000000000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '" + first + "',"
        + " 'fields.id.end' = '" + last + "'");
    for (int i = 0; i < (inputs.isEmpty() ? 0 : FEATURES); i++) {
      ddl.append(", 'fields.x").append(i).append(".min' = '-3', 'fields.x").append(i).append(".max' = '3'");
    }
    return ddl.append(")").toString();
  }

  /** A variant's max-concurrent-operations, or null. */
  private static String capacity;

  /**
   * The settings of every job, a user's to choose: object reuse (Flink then hands a record to the
   * next chained operator instead of copying it through its serializer) and room for eight batches
   * in the async operator.
   */

  private static Configuration config() {
    Configuration config = new Configuration();
    config.setString("pipeline.object-reuse", "true");
    // Eight batches of room: with two (2048) the task thread, the scoring thread and the source
    // wait on each other at every batch (0.72x the async no-op against 0.82x, same run; see
    // docs/performance.md, 2026-12-06, the async ceiling).
    config.setString("table.exec.async-scalar.max-concurrent-operations", String.valueOf(8 * BATCH_ROWS));
    // As BatchingPredictFunction recommends: no retry path and no timer per row.
    config.setString("table.exec.async-scalar.retry-strategy", "NO_RETRY");
    config.setString("table.exec.async-scalar.timeout", "0 s");
    // -Dbench.flink.KEY=VALUE sets KEY (to try other settings).
    for (String key : System.getProperties().stringPropertyNames()) {
      if (key.startsWith("bench.flink.")) {
        config.setString(key.substring("bench.flink.".length()), System.getProperty(key));
      }
    }
    if (capacity != null) {
      config.setString("table.exec.async-scalar.max-concurrent-operations", capacity);
    }
    return config;
  }

  /** A local environment, parallelism 1, with {@link #config()}. */
  private static StreamExecutionEnvironment environment() {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(config());
    env.setParallelism(1);
    return env;
  }

  private static StreamTableEnvironment env(List<Row> rows) {
    StreamExecutionEnvironment env = environment();
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    tEnv.createTemporaryView("t", tEnv.fromDataStream(env.fromData(rows, rowType())));
    return tEnv;
  }

  private static List<Row> readRows(Path file) throws IOException {
    ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    int n = buf.remaining() / (8 * FEATURES);
    List<Row> rows = new ArrayList<>(n);
    for (int r = 0; r < n; r++) {
      Row row = new Row(FEATURES + 1);
      row.setField(0, (long) r);
      for (int i = 0; i < FEATURES; i++) {
        row.setField(i + 1, buf.getDouble());
      }
      rows.add(row);
    }
    return rows;
  }
}
