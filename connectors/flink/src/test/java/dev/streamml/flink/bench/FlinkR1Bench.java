package dev.streamml.flink.bench;

import dev.streamml.flink.BatchPolicy;
import dev.streamml.flink.BatchingPredictFunction;
import dev.streamml.flink.PredictFunction;
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
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;

/**
 * Rows/s per slot (parallelism 1, a local MiniCluster) scoring R1 rows through Flink SQL: no model
 * (the pipe's ceiling), the per-row function, the batching function and ML_PREDICT (async,
 * batched). Driven by benchmarks/flink_r1.py, which writes the rows and prints the table.
 *
 * <p>Arguments: MODEL ROWS_FILE (float64 little-endian, row-major, 32 per row) RUNS. Prints one
 * line per case and run: {@code case<TAB>seconds}.
 */
public final class FlinkR1Bench {
  private static final int FEATURES = 32;

  public static void main(String[] args) throws Exception {
    String model = args[0];
    List<Row> rows = readRows(Path.of(args[1]));
    int runs = Integer.parseInt(args[2]);
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
      }
    }
  }

  private static StreamTableEnvironment env(List<Row> rows) {
    Configuration config = new Configuration();
    config.setString("table.exec.async-scalar.max-concurrent-operations", "2048");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(config);
    env.setParallelism(1);
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    TypeInformation<?>[] types = new TypeInformation<?>[FEATURES + 1];
    String[] names = new String[FEATURES + 1];
    types[0] = Types.LONG;
    names[0] = "id";
    for (int i = 0; i < FEATURES; i++) {
      types[i + 1] = Types.DOUBLE;
      names[i + 1] = "x" + i;
    }
    tEnv.createTemporaryView("t", tEnv.fromDataStream(env.fromData(rows, new RowTypeInfo(types, names))));
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
