package dev.streamml.flink;

import dev.streamml.flink.Fixtures.FixtureRow;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.table.api.Table;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;

/** A shared MiniCluster and helpers for the Flink tests. */
final class FlinkTestSupport {
  private FlinkTestSupport() {}

  static MiniClusterExtension miniCluster() {
    return new MiniClusterExtension(
        new MiniClusterResourceConfiguration.Builder()
            .setNumberTaskManagers(1)
            .setNumberSlotsPerTaskManager(2)
            .build());
  }

  /** The environment under the last {@link #tableEnv()}, for {@link #fixtureTable}. */
  private static StreamExecutionEnvironment lastEnv;

  /** A streaming table environment with parallelism 1 and room for async batches. */
  static StreamTableEnvironment tableEnv() {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(1);
    lastEnv = env;
    StreamTableEnvironment tEnv = StreamTableEnvironment.create(env);
    tEnv.getConfig().set("table.exec.async-scalar.max-concurrent-operations", "1000");
    return tEnv;
  }

  /**
   * The fixture rows as a table {@code (id INT, x0..x31 DOUBLE)}, from a bounded stream (SQL
   * VALUES literals cannot hold the NaNs the fixtures have).
   */
  static Table fixtureTable(StreamTableEnvironment tEnv, List<FixtureRow> rows) {
    TypeInformation<?>[] types = new TypeInformation<?>[Fixtures.FEATURES + 1];
    String[] names = new String[Fixtures.FEATURES + 1];
    types[0] = Types.INT;
    names[0] = "id";
    for (int i = 0; i < Fixtures.FEATURES; i++) {
      types[i + 1] = Types.DOUBLE;
      names[i + 1] = "x" + i;
    }
    List<Row> values = new ArrayList<>();
    for (FixtureRow r : rows) {
      Object[] cells = new Object[Fixtures.FEATURES + 1];
      cells[0] = r.id();
      for (int i = 0; i < Fixtures.FEATURES; i++) {
        cells[i + 1] = r.features()[i];
      }
      values.add(Row.of(cells));
    }
    return tEnv.fromDataStream(lastEnv.fromData(values, new RowTypeInfo(types, names)));
  }

  static List<Row> collect(StreamTableEnvironment tEnv, String sql) throws Exception {
    List<Row> out = new ArrayList<>();
    try (CloseableIterator<Row> it = tEnv.executeSql(sql).collect()) {
      it.forEachRemaining(out::add);
    }
    return out;
  }
}
