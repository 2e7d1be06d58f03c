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
 * (the pipe's ceiling), the per-row function, the batching function and ML_PREDICT (async,
 * batched). Driven by benchmarks/flink_r1.py, which writes the rows and prints the table.
 *
 * <p>Arguments: MODEL ROWS_FILE (float64 little-endian, row-major, 32 per row) RUNS [GENERATED].
 * Prints one line per case and run: {@code case<TAB>seconds}. With GENERATED &gt; 0 the cases run
 * again on GENERATED rows that Flink's datagen source makes inside the job (32 doubles uniform in
 * [-3, 3]; the per-row function on a tenth of them, it is slow): no rows are serialised into the
 * job graph, so start-up weighs little. Those lines are {@code generated<TAB>case<TAB>rows<TAB>seconds},
 * and there are two more cases: the same rows as a DataStream ({@code toDataStream}, copied into
 * rows of a {@link RowTypeInfo}) into a discarding sink, without a model and through {@link
 * StreammlStreams#predict} (the DataStream operator, its buffer in checkpointed state).
 */
public final class FlinkR1Bench {
  private static final int FEATURES = 32;

  public static void main(String[] args) throws Exception {
    String model = args[0];
    List<Row> rows = readRows(Path.of(args[1]));
    int runs = Integer.parseInt(args[2]);
    long generated = args.length > 3 ? Long.parseLong(args[3]) : 0;
    String features = IntStream.range(0, FEATURES).mapToObj(i -> "x" + i).collect(Collectors.joining(", "));
    String inputs = IntStream.range(0, FEATURES).mapToObj(i -> "x" + i + " DOUBLE").collect(Collectors.joining(", "));
    String[][] cases = {
      {"no model (Flink pipe)", "SELECT id, x0 AS p FROM t"},
      {"per-row ScalarFunction", "SELECT id, streamml_predict('" + model + "', " + features + ") FROM t"},
      {"batching AsyncScalarFunction", "SELECT id, streamml_predict_batched('" + model + "', " + features + ") FROM t"},
      {"ML_PREDICT (async, batched)", "SELECT id, probability FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR("
          + features + "), MAP['async', 'true', 'max-concurrent-operations', '2048'])"},
    };
    // Run 0 warms the JVM and the planner up (the first job also starts class loading); not printed.
    for (int run = -1; run < runs; run++) {
      for (String[] c : cases) {
        StreamTableEnvironment tEnv = env(rows);
        tEnv.createTemporarySystemFunction("streamml_predict", PredictFunction.class);
        tEnv.createTemporarySystemFunction("streamml_predict_batched",
            new BatchingPredictFunction(new BatchPolicy(1024, Duration.ofMillis(20))));
        tEnv.executeSql("CREATE MODEL m INPUT (" + inputs + ") OUTPUT (probability DOUBLE) WITH ("
            + "'provider' = 'streamml', 'path' = '" + model + "', 'max-batch-rows' = '1024', 'max-wait' = '20 ms')");
        tEnv.executeSql("CREATE TABLE sink (id BIGINT, p DOUBLE) WITH ('connector' = 'blackhole')");
        long start = System.nanoTime();
        tEnv.executeSql("INSERT INTO sink " + c[1]).await();
        double seconds = (System.nanoTime() - start) / 1e9;
        if (run >= 0) {
          System.out.println(c[0] + "\t" + seconds);
        }
        if (generated > 0 && c == cases[cases.length - 1]) {
          for (boolean withModel : new boolean[] {false, true}) {
            double took = dataStream(model, generated, inputs, withModel);
            if (run >= 0) {
              String name = withModel ? "DataStream StreammlStreams.predict" : "DataStream pipe, no model";
              System.out.println("generated\t" + name + "\t" + generated + "\t" + took);
            }
          }
        }
        if (generated > 0) {
          long n = c[0].startsWith("per-row") ? generated / 10 : generated;
          tEnv.executeSql(datagen("g", n, inputs));
          start = System.nanoTime();
          tEnv.executeSql("INSERT INTO sink " + c[1].replace("FROM t", "FROM g").replace("TABLE t,", "TABLE g,")).await();
          seconds = (System.nanoTime() - start) / 1e9;
          if (run >= 0) {
            System.out.println("generated\t" + c[0] + "\t" + n + "\t" + seconds);
          }
        }
      }
    }
  }

  /** Seconds of a DataStream job over {@code rows} datagen rows, through the model or not. */
  private static double dataStream(String model, long rows, String inputs, boolean withModel)
      throws Exception {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(new Configuration());
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    tEnv.executeSql(datagen("g", rows, inputs));
    RowTypeInfo type = rowType();
    DataStream<Row> stream = tEnv.toDataStream(tEnv.from("g")).map(r -> {
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

  /** A datagen table of {@code rows} rows: a sequence id and the inputs uniform in [-3, 3]. */
  private static String datagen(String name, long rows, String inputs) {
    StringBuilder ddl = new StringBuilder("CREATE TEMPORARY TABLE " + name + " (id BIGINT, " + inputs
        + ") WITH ('connector' = 'datagen', 'rows-per-second' = '1000000000', 'fields.id.kind' = 'sequence',"
        + " 'fields.id.start' = '0', 'fields.id.end' = '" + (rows - 1) + "'");
    for (int i = 0; i < FEATURES; i++) {
      ddl.append(", 'fields.x").append(i).append(".min' = '-3', 'fields.x").append(i).append(".max' = '3'");
    }
    return ddl.append(")").toString();
  }

  private static StreamTableEnvironment env(List<Row> rows) {
    Configuration config = new Configuration();
    config.setString("table.exec.async-scalar.max-concurrent-operations", "2048");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(config);
    env.setParallelism(1);
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
