package dev.streamml.flink.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * With {@code -Dbench.threads=true}: every thread's CPU time, sampled every 20 ms while a job runs
 * (a job's threads end with it), summed per thread name with digits dropped.
 *
 * <p>Java threads are read through the {@code ThreadMXBean} (full names, CPU and bytes allocated);
 * the JVM's own threads (JIT compilers, GC, the VM thread), which it does not list, through {@code
 * /proc/self/task/TID/schedstat} (run time in ns; the names are the kernel's, 15 characters).
 * For each group it also records the first and the last sample, since {@link #start}, in which the
 * group ran at least 2 ms of the 20: the window in which it was busy.
 */
final class ThreadCpu {
  private static final boolean ON = Boolean.getBoolean("bench.threads");
  private static final long PERIOD_NS = 20_000_000L;
  private static final long BUSY_NS = 2_000_000L;
  /** The JVM's own threads, which the ThreadMXBean does not list. */
  private static final String JVM_THREADS =
      "C1 CompilerThre.*|C2 CompilerThre.*|GC Thread.*|G1 .*|VM Thread|VM Periodic Tas.*|Sweeper thread";

  private static final class Seen {
    String name;
    long atStart = -1;
    long cpu;
    long allocStart = -1;
    long alloc;
    long first = -1;
    long last = -1;
    /** With -Dbench.timeline=true: CPU ns per 100 ms since start, by bucket. */
    final Map<Integer, Long> buckets = new TreeMap<>();
  }
  private static final boolean TIMELINE = Boolean.getBoolean("bench.timeline");
  /** With -Dbench.runq=true: also each kernel task's run-queue wait, as groups "runq NAME". */
  private static final boolean RUNQ = Boolean.getBoolean("bench.runq");

  private static final Map<String, Seen> SEEN = new HashMap<>();
  /** Names read once: a Java thread's by id, a kernel task's by tid (null: not the JVM's own). */
  private static final Map<Long, String> JAVA_NAMES = new HashMap<>();
  private static final Map<String, String> TASK_NAMES = new HashMap<>();
  private static long started = System.nanoTime();
  /** Machine-wide busy CPU (/proc/stat, ns) and this process's CPU at {@link #start}. */
  private static long machineAtStart;
  private static long processAtStart;

  /** CPU ns every core spent not idle since boot, from /proc/stat (USER_HZ = 100). */
  static long machineBusyNanos() {
    try {
      String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
      long busy = 0;
      for (int i = 1; i < f.length && i <= 8; i++) {
        if (i != 4 && i != 5) { // idle, iowait
          busy += Long.parseLong(f[i]);
        }
      }
      return busy * 10_000_000L;
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }

  static long processNanos() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
  }

  static {
    if (ON) {
      Thread sampler = new Thread(() -> {
        while (true) {
          sample();
          try {
            Thread.sleep(PERIOD_NS / 1_000_000L);
          } catch (InterruptedException e) {
            return;
          }
        }
      }, "bench-thread-sampler");
      sampler.setDaemon(true);
      sampler.start();
    }
  }

  private ThreadCpu() {}

  /** Forget what was seen: the next {@link #print} covers what runs from now. */
  static synchronized void start() {
    if (!ON) {
      return;
    }
    sample();
    SEEN.values().forEach(s -> {
      s.atStart = s.cpu;
      s.allocStart = s.alloc;
      s.first = -1;
      s.last = -1;
      s.buckets.clear();
    });
    started = System.nanoTime();
    machineAtStart = machineBusyNanos();
    processAtStart = processNanos();
  }

  private static synchronized void sample() {
    long now = System.nanoTime();
    com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    for (long id : mx.getAllThreadIds()) {
      long cpu = mx.getThreadCpuTime(id);
      String name = JAVA_NAMES.get(id);
      if (name == null) {
        ThreadInfo info = mx.getThreadInfo(id);
        if (info == null) {
          continue;
        }
        name = info.getThreadName();
        JAVA_NAMES.put(id, name);
      }
      if (cpu > 0) {
        see("java:" + id, name, cpu, mx.getThreadAllocatedBytes(id), now);
      }
    }
    try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
      for (Path task : tasks) {
        try {
          String tid = task.getFileName().toString();
          String name = TASK_NAMES.computeIfAbsent(tid, t -> {
            try {
              return Files.readString(task.resolve("comm")).trim();
            } catch (IOException e) {
              return "";
            }
          });
          String[] stat = Files.readString(task.resolve("schedstat")).trim().split(" ");
          if (RUNQ) {
            // Time this thread waited for a core while runnable.
            see("rq:" + tid, "runq " + name, Long.parseLong(stat[1]), 0, now);
          }
          if (name.matches(JVM_THREADS)) {
            see("tid:" + tid, "jvm " + name, Long.parseLong(stat[0]), 0, now);
          }
        } catch (IOException | RuntimeException e) {
          // the thread ended between the listing and the read
        }
      }
    } catch (IOException e) {
      // no /proc: Java threads only
    }
  }

  private static void see(String key, String name, long cpu, long alloc, long now) {
    Seen s = SEEN.computeIfAbsent(key, k -> new Seen());
    if (s.atStart < 0 || cpu < s.cpu) { // a thread started since the last start(): all of its time counts
      s.atStart = 0;
      s.allocStart = 0;
      s.cpu = 0;
      s.alloc = 0;
    }
    long ran = cpu - s.cpu;
    if (TIMELINE && ran > 0) {
      s.buckets.merge((int) ((now - started) / 100_000_000L), ran, Long::sum);
    }
    if (ran >= BUSY_NS) {
      long at = now - started;
      if (s.first < 0) {
        s.first = at;
      }
      s.last = at;
    }
    s.name = name;
    s.cpu = cpu;
    s.alloc = alloc;
  }

  /**
   * Print, per thread group that ran more than 20 ms since {@link #start}: {@code
   * threads<TAB>source<TAB>case<TAB>name<TAB>cpu s<TAB>busy from s<TAB>busy until s<TAB>MB allocated}.
   */
  static synchronized void print(boolean print, String source, String job) {
    if (!ON) {
      return;
    }
    sample();
    if (print) {
      // What other processes ran on this machine's cores meanwhile (steal included).
      double machine = (machineBusyNanos() - machineAtStart) / 1e9;
      double own = (processNanos() - processAtStart) / 1e9;
      System.out.printf("foreign\t%s\t%s\t%.2f\t%.2f\t%.2f%n", source, job, machine - own, own,
          (System.nanoTime() - started) / 1e9);
    }
    Map<String, long[]> byName = new TreeMap<>();
    SEEN.values().forEach(s -> {
      long[] g = byName.computeIfAbsent(s.name.replaceAll("[0-9]+", "#"), k -> new long[] {0, Long.MAX_VALUE, -1, 0});
      g[0] += s.cpu - s.atStart;
      if (s.first >= 0) {
        g[1] = Math.min(g[1], s.first);
        g[2] = Math.max(g[2], s.last);
      }
      g[3] += s.alloc - s.allocStart;
    });
    byName.forEach((thread, g) -> {
      if (print && g[0] > 20_000_000L) {
        System.out.printf("threads\t%s\t%s\t%s\t%.3f\t%.2f\t%.2f\t%.0f%n", source, job, thread, g[0] / 1e9,
            g[2] < 0 ? 0 : g[1] / 1e9, g[2] < 0 ? 0 : g[2] / 1e9, g[3] / 1e6);
      }
    });
    if (print && TIMELINE) {
      Map<String, Map<Integer, Long>> lines = new TreeMap<>();
      SEEN.values().forEach(s -> s.buckets.forEach((b, ns) -> lines
          .computeIfAbsent(s.name.replaceAll("[0-9]+", "#").replaceAll(" .*->", "->"), k -> new TreeMap<>())
          .merge(b, ns, Long::sum)));
      int lastBucket = (int) ((System.nanoTime() - started) / 100_000_000L);
      lines.forEach((thread, b) -> {
        StringBuilder line = new StringBuilder(String.format("timeline\t%-28.28s", thread));
        for (int i = 0; i <= lastBucket; i++) {
          line.append(String.format("%3d", Math.round(b.getOrDefault(i, 0L) / 1e6)));
        }
        if (b.values().stream().mapToLong(Long::longValue).sum() > 20_000_000L) {
          System.out.println(line);
        }
      });
    }
  }
}
