package dev.streamml.flink;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.types.Row;

/**
 * A sink table for tests ({@code 'connector' = 'test-collect', 'name' = '...'}): the rows a job
 * inserts, by name, in this JVM (the MiniCluster runs in the test's process).
 */
public final class CollectSinkFactory implements DynamicTableSinkFactory {
  static final ConfigOption<String> NAME = ConfigOptions.key("name").stringType().noDefaultValue();
  private static final Map<String, List<Row>> ROWS = new ConcurrentHashMap<>();

  /** The rows inserted into the sink named {@code name} so far. */
  static List<Row> rows(String name) {
    List<Row> rows = ROWS.get(name);
    synchronized (rows == null ? new Object() : rows) {
      return rows == null ? List.of() : new ArrayList<>(rows);
    }
  }

  @Override
  public DynamicTableSink createDynamicTableSink(Context context) {
    FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
    helper.validate();
    String name = helper.getOptions().get(NAME);
    ROWS.put(name, new ArrayList<>());
    return new Table(name, context.getPhysicalRowDataType());
  }

  private record Table(String name, org.apache.flink.table.types.DataType type) implements DynamicTableSink {
    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requested) {
      return ChangelogMode.insertOnly();
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(DynamicTableSink.Context context) {
      DataStructureConverter converter = context.createDataStructureConverter(type);
      return SinkV2Provider.of(new Collect(name, converter));
    }

    @Override
    public DynamicTableSink copy() {
      return new Table(name, type);
    }

    @Override
    public String asSummaryString() {
      return "test-collect(" + name + ")";
    }
  }

  private record Collect(String name, DynamicTableSink.DataStructureConverter converter) implements Sink<RowData> {
    @Override
    public SinkWriter<RowData> createWriter(WriterInitContext context) {
      converter.open(org.apache.flink.table.connector.RuntimeConverter.Context.create(
          CollectSinkFactory.class.getClassLoader()));
      List<Row> rows = ROWS.get(name);
      return new SinkWriter<>() {
        @Override
        public void write(RowData element, SinkWriter.Context c) {
          Row row = (Row) converter.toExternal(element);
          synchronized (rows) {
            rows.add(row);
          }
        }

        @Override
        public void flush(boolean endOfInput) {}

        @Override
        public void close() {}
      };
    }
  }

  @Override
  public String factoryIdentifier() {
    return "test-collect";
  }

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of(NAME);
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    return Set.of();
  }
}
