// Runs a SQL script against a Flink session cluster through its REST address, as
// `sql-client.sh -f FILE` does (scripts/flink.sh sql FILE; the SQL client is not served by the
// Maven mirror). Statements end with ';' at the end of a line; '--' lines are comments.
// SET 'key' = 'value' sets a table option; every other statement goes to executeSql, and the jobs
// that INSERTs submit run on the cluster and are awaited (a bounded job returns when it finishes).
//
//   java -cp "<flink jars>/*" SqlScript.java HOST:PORT FILE

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;

public class SqlScript {
  private static final Pattern SET = Pattern.compile("(?is)SET\\s+'([^']+)'\\s*=\\s*'([^']*)'");

  public static void main(String[] args) throws Exception {
    if (args.length != 2 || !args[0].contains(":")) {
      System.err.println("usage: SqlScript HOST:PORT FILE (got " + String.join(" ", args) + ")");
      System.exit(2);
    }
    String host = args[0].substring(0, args[0].lastIndexOf(':'));
    int port = Integer.parseInt(args[0].substring(args[0].lastIndexOf(':') + 1));
    Configuration conf = new Configuration();
    conf.setString("execution.target", "remote");
    conf.setString("execution.attached", "true");
    conf.setString("rest.address", host);
    conf.setString("rest.port", String.valueOf(port));
    TableEnvironment tEnv = TableEnvironment.create(
        EnvironmentSettings.newInstance().inStreamingMode().withConfiguration(conf).build());
    List<TableResult> jobs = new ArrayList<>();
    for (String statement : statements(Files.readString(Path.of(args[1])))) {
      Matcher set = SET.matcher(statement);
      if (set.matches()) {
        tEnv.getConfig().getConfiguration().setString(set.group(1), set.group(2));
        continue;
      }
      TableResult result = tEnv.executeSql(statement);
      if (result.getJobClient().isPresent()) {
        System.out.println("submitted job " + result.getJobClient().get().getJobID() + " to " + args[0]);
        jobs.add(result);
      }
    }
    for (TableResult job : jobs) {
      job.await();
      System.out.println("job " + job.getJobClient().get().getJobID() + " finished");
    }
    System.exit(0);
  }

  /** The script's statements, '--' comment lines dropped. */
  static List<String> statements(String script) {
    StringBuilder sql = new StringBuilder();
    for (String line : script.split("\n")) {
      if (!line.strip().startsWith("--")) {
        sql.append(line).append('\n');
      }
    }
    List<String> out = new ArrayList<>();
    for (String s : (sql + "\n").split(";\\s*\n")) {
      if (!s.isBlank()) {
        out.add(s.strip());
      }
    }
    return out;
  }
}
