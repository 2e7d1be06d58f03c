package dev.streamml.flink;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The batching function's scoring step outside Flink, in thread CPU per row: packing a batch's
 * boxed rows into one {@code double[]}, the native call on it (the JNI copy, the core's checks,
 * the model, the answer), reading the answer back, the whole {@link RowScorer#score}, and {@link
 * FutureBatcher} end to end (the caller's {@code add}, the scorer and completer threads) with a
 * callback per future that, like Flink's async operator, hands each result to a queue another
 * thread drains.
 *
 * <p>Arguments: MODEL ROWS_FILE (float64 little-endian, row-major, 32 per row) [REPEATS].
 */
public final class ScoringStepBench {
  private static final int WIDTH = 32;
  private static final int BATCH = 1024;
  private static final ThreadMXBean MX = ManagementFactory.getThreadMXBean();

  public static void main(String[] args) throws Exception {
    List<Object[]> rows = readRows(Path.of(args[1]));
    int repeats = args.length > 2 ? Integer.parseInt(args[2]) : 5;
    int n = rows.size() - rows.size() % BATCH;
    try (RowScorer scorer = RowScorer.open(args[0], null)) {
      RowCodec codec = new RowCodec(64);
      List<List<Object[]>> batches = new ArrayList<>();
      for (int s = 0; s < n; s += BATCH) {
        batches.add(rows.subList(s, s + BATCH));
      }
      double[][] packed = new double[batches.size()][];
      for (int b = 0; b < batches.size(); b++) {
        packed[b] = codec.doubles(batches.get(b), WIDTH).clone();
      }
      for (int rep = 0; rep < repeats; rep++) {
        long t = cpu();
        double sink = 0;
        for (List<Object[]> batch : batches) {
          sink += codec.doubles(batch, WIDTH)[7];
        }
        long pack = cpu() - t;
        t = cpu();
        byte[][] answers = new byte[batches.size()][];
        for (int b = 0; b < batches.size(); b++) {
          answers[b] = scorer.model().scoreRowsDoubles(packed[b], BATCH, WIDTH);
        }
        long call = cpu() - t;
        t = cpu();
        for (List<Object[]> batch : batches) {
          sink += scorer.score(batch).size();
        }
        long whole = cpu() - t;
        System.out.printf("step\tpack %.3f\tnative call %.3f\twhole score() %.3f\tanswer+rest %.3f us/row%s%n",
            pack * 1e-3 / n, call * 1e-3 / n, whole * 1e-3 / n, (whole - pack - call) * 1e-3 / n,
            sink == 0.5 ? " " : "");
        batcher(scorer, rows.subList(0, n));
      }
    }
  }

  /** FutureBatcher end to end: thread CPU of the caller, the scorer and the completer per row. */
  private static void batcher(RowScorer scorer, List<Object[]> rows) throws Exception {
    ConcurrentLinkedQueue<Object> results = new ConcurrentLinkedQueue<>();
    AtomicLong drained = new AtomicLong();
    int n = rows.size();
    Thread drain = new Thread(() -> {
      while (drained.get() < n) {
        if (results.poll() != null) {
          drained.incrementAndGet();
        } else {
          Thread.onSpinWait();
        }
      }
    }, "bench-drain");
    drain.start();
    long caller;
    long[] after;
    try (ModelSlot<Void> slot = new ModelSlot<>(ModelSlot.Config.of(scorer.model().path()), null);
        FutureBatcher<Void, Double> batcher = new FutureBatcher<>(slot, none -> scorer,
            new BatchPolicy(BATCH, Duration.ofMillis(20)), (outputs, version) -> (Double) outputs[0])) {
      long t = cpu();
      for (Object[] row : rows) {
        CompletableFuture<Double> f = new CompletableFuture<>();
        f.whenComplete((v, e) -> results.add(v));
        batcher.add(row, f);
      }
      batcher.flush();
      caller = cpu() - t;
      drain.join();
      after = threads(); // its threads end with close()
    }
    long[] before = {0, 0};
    System.out.printf("batcher\tcaller %.3f\tscorer %.3f\tcompleter %.3f us/row%n", caller * 1e-3 / n,
        (after[0] - before[0]) * 1e-3 / n, (after[1] - before[1]) * 1e-3 / n);
  }

  /** CPU ns of the streamml-batch-scorer and -completer threads alive. */
  private static long[] threads() {
    long[] sum = new long[2];
    for (Thread th : Thread.getAllStackTraces().keySet()) {
      int i = th.getName().equals("streamml-batch-scorer") ? 0 : th.getName().equals("streamml-batch-completer") ? 1 : -1;
      if (i >= 0) {
        sum[i] += MX.getThreadCpuTime(th.getId());
      }
    }
    return sum;
  }

  private static long cpu() {
    return MX.getCurrentThreadCpuTime();
  }

  private static List<Object[]> readRows(Path file) throws IOException {
    ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    int n = buf.remaining() / (8 * WIDTH);
    List<Object[]> rows = new ArrayList<>(n);
    for (int r = 0; r < n; r++) {
      Object[] row = new Object[WIDTH];
      for (int i = 0; i < WIDTH; i++) {
        row[i] = buf.getDouble();
      }
      rows.add(row);
    }
    return rows;
  }
}
