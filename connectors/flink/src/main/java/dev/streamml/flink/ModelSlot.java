package dev.streamml.flink;

import java.io.Serializable;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The model a reference names now, swapped only between batches: the Flink side of {@code
 * streamml.lifecycle.ModelSlot} ({@code docs/lifecycle.md}).
 *
 * <p>A host asks {@link #acquire} for the version of each batch, scores the whole batch with it and
 * releases it ({@link Version#close}); a version loaded since (by the background thread every
 * {@link Config#reloadInterval}, or by {@link #refresh}) takes over at the next {@link #acquire}.
 * A new binary is loaded and verified on the reload thread, off the scoring path, pinned to the
 * SHA-256 it resolved to with the configured trust list and pin, and prepared ({@code prepare},
 * e.g. a {@link RowScorer}); one that fails any of these is <b>refused</b>: the old version keeps
 * serving, {@link #refused()} counts it (once per binary), {@link #lastError()} and an error log
 * line say why. A failed re-resolution counts in {@link #resolveErrors()} and changes nothing. A
 * version replaced while a batch still holds it is closed when that batch releases it.
 *
 * <p>Without a reload interval a binary's path is loaded as before (no resolution, no thread) and
 * never swapped ({@link #refresh} does nothing); {@link #acquire} then hands out the one version
 * without counting holds, which {@link #close} closes.
 *
 * @param <T> what the host builds per version (its scorer), closed with the version if {@link
 *     AutoCloseable}
 */
public final class ModelSlot<T> implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ModelSlot.class);

  /** Builds the host's per-version object when a version is loaded (off the scoring path). */
  @FunctionalInterface
  public interface Prepare<T> {
    T prepare(NativeModel model, String version);
  }

  /**
   * Where a slot's model comes from, and how often to look again.
   *
   * @param reference a binary's path or URI, a model directory or {@code DIR@ALIAS}
   * @param sha256 a pin every resolved binary must match (lowercase hex), or null
   * @param trustedModels a trust file every resolved binary must be in, or null (see {@link
   *     NativeModel#load(String, String, String)})
   * @param reloadInterval re-resolve this often; null: resolve once at open
   */
  public record Config(String reference, String sha256, String trustedModels, Duration reloadInterval)
      implements Serializable {
    public Config {
      if (reference == null) {
        throw new ModelException("the model reference is null");
      }
      if (reloadInterval != null && (reloadInterval.isNegative() || reloadInterval.isZero())) {
        throw new ModelException("reload-interval must be a positive duration, got " + reloadInterval);
      }
    }

    /** A fixed binary, as hosts took it before references. */
    public static Config of(String path) {
      return new Config(path, null, null, null);
    }

    /** This configuration for another reference (a challenger: same trust list and interval, no pin). */
    public Config withReference(String other) {
      return new Config(other, null, trustedModels, reloadInterval);
    }
  }

  /**
   * One loaded, verified version. A holder from {@link #acquire} closes it when its batch is
   * done; the model and prepared object are closed once no one holds the version.
   */
  public static final class Version<T> implements AutoCloseable {
    private final NativeModel model;
    private final String version;
    private final String sha256;
    private final T prepared;
    private final AtomicInteger holders = new AtomicInteger(1); // the slot's own hold
    /** The one version of a fixed slot: holds are not counted; the slot closes it. */
    private final boolean fixed;

    Version(NativeModel model, String version, String sha256, T prepared, boolean fixed) {
      this.fixed = fixed;
      this.model = model;
      this.version = version;
      this.sha256 = sha256;
      this.prepared = prepared;
    }

    public NativeModel model() {
      return model;
    }

    /** The name outputs carry: the model directory's version, else the binary's own. */
    public String version() {
      return version;
    }

    public String sha256() {
      return sha256;
    }

    public T prepared() {
      return prepared;
    }

    Version<T> hold() {
      holders.incrementAndGet();
      return this;
    }

    /** Release a hold ({@link #acquire}'s): the last release closes the version. */
    @Override
    public void close() {
      if (!fixed) {
        release();
      }
    }

    void release() {
      if (holders.decrementAndGet() == 0) {
        try {
          if (prepared instanceof AutoCloseable c && prepared != model) {
            c.close();
          }
        } catch (Exception e) {
          LOG.warn("closing model version {}: {}", version, e.toString());
        } finally {
          model.close();
        }
      }
    }

    @Override
    public String toString() {
      return "Version(" + version + ", sha256 " + sha256 + ")";
    }
  }

  private final Config config;
  private final Prepare<T> prepare;
  private final Object refreshLock = new Object();
  private final Set<String> refusedSha = new HashSet<>();
  private final AtomicLong refused = new AtomicLong();
  private final AtomicLong resolveErrors = new AtomicLong();
  private final AtomicLong swaps = new AtomicLong();
  private volatile String lastError;
  /** Guarded by {@code this}. */
  private Version<T> current;
  /** Loaded, not yet taken over; guarded by {@code this}, read without it as a hint. */
  private volatile Version<T> staged;
  private final ScheduledExecutorService reloader;
  /** A binary's path without a reload interval: one version for the slot's life. */
  private final boolean fixed;
  private boolean closed;

  /**
   * Resolve and load the reference now (a {@link ModelException} if it does not: a host never
   * starts empty) and start the reload thread if {@code config} has an interval.
   */
  public ModelSlot(Config config, Prepare<T> prepare) {
    this.config = config;
    this.prepare = prepare;
    this.fixed = config.reloadInterval() == null && !ModelReference.isDirectory(config.reference());
    this.current = fixed ? loadFixed() : load(ModelReference.resolve(config.reference(), 0));
    if (config.reloadInterval() != null) {
      long nanos = config.reloadInterval().toNanos();
      reloader = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "streamml-reload " + config.reference());
        t.setDaemon(true);
        return t;
      });
      reloader.scheduleWithFixedDelay(this::refresh, nanos, nanos, TimeUnit.NANOSECONDS);
    } else {
      reloader = null;
    }
  }

  public Config config() {
    return config;
  }

  /**
   * The version to score the next batch with, held until its {@link Version#close}: a staged new
   * version takes over here. Call once per batch and score the whole batch with it.
   */
  public Version<T> acquire() {
    if (fixed) {
      return current; // never swapped: not held, closed with the slot
    }
    return acquireNext();
  }

  private synchronized Version<T> acquireNext() {
    Version<T> next = staged;
    if (next != null) {
      staged = null;
      Version<T> old = current;
      current = next;
      swaps.incrementAndGet();
      LOG.info("model {}: version {} takes over from {}", config.reference(), next.version, old.version);
      old.release();
    }
    return current.hold();
  }

  /** The version serving now (a staged one is not taken over by reading this). */
  public synchronized String servingVersion() {
    return current.version;
  }

  /**
   * Re-resolve now; load, verify and stage a changed binary. True if a new version is staged.
   * Never throws for a bad version or a failed resolution: those are counted, logged and kept
   * in {@link #lastError()}, and the serving version keeps serving.
   */
  public boolean refresh() {
    if (fixed) {
      return false;
    }
    synchronized (refreshLock) {
      ModelReference.Resolved resolved;
      try {
        resolved = ModelReference.resolve(config.reference(), 0);
      } catch (RuntimeException e) {
        resolveErrors.incrementAndGet();
        lastError = e.getMessage();
        LOG.warn("model {}: cannot re-resolve; version {} keeps serving: {}",
            config.reference(), servingVersion(), e.getMessage());
        return false;
      }
      synchronized (this) {
        if (closed) {
          return false;
        }
        if (resolved.sha256().equals(current.sha256)) {
          dropStaged(); // moved back before a batch took the staged version
          return false;
        }
        Version<T> waiting = staged;
        if ((waiting != null && resolved.sha256().equals(waiting.sha256))
            || refusedSha.contains(resolved.sha256())) {
          return false;
        }
      }
      Version<T> loaded;
      try {
        loaded = load(resolved);
      } catch (RuntimeException e) {
        refusedSha.add(resolved.sha256());
        refused.incrementAndGet();
        lastError = e.getMessage();
        LOG.error("model {}: refused version {} ('{}', sha256 {}); version {} keeps serving: {}",
            config.reference(), resolved.version(), resolved.path(), resolved.sha256(),
            servingVersion(), e.getMessage());
        return false;
      }
      synchronized (this) {
        if (closed) {
          loaded.release();
          return false;
        }
        dropStaged();
        staged = loaded;
      }
      LOG.info("model {}: version {} loaded; it takes over at the next batch",
          config.reference(), loaded.version);
      return true;
    }
  }

  private void dropStaged() {
    Version<T> old = staged;
    staged = null;
    if (old != null) {
      old.release();
    }
  }

  /** Versions refused (failed to load, verify or prepare); each binary counts once. */
  public long refused() {
    return refused.get();
  }

  /** Re-resolutions that failed (alias missing or unreadable); nothing changed. */
  public long resolveErrors() {
    return resolveErrors.get();
  }

  /** Versions taken over after the first. */
  public long swaps() {
    return swaps.get();
  }

  /** Why the last refusal or failed re-resolution happened, or null. */
  public String lastError() {
    return lastError;
  }

  /**
   * Export the counters into {@code group}: {@code modelSwaps}, {@code modelRefused}, {@code
   * modelResolveErrors} and the gauge {@code modelVersion} (the version serving).
   */
  public void registerMetrics(MetricGroup group) {
    group.counter("modelSwaps", new Reading(swaps));
    group.counter("modelRefused", new Reading(refused));
    group.counter("modelResolveErrors", new Reading(resolveErrors));
    group.gauge("modelVersion", (Gauge<String>) this::servingVersion);
  }

  /** Stop the reload thread and release the slot's versions (held ones close on release). */
  @Override
  public void close() {
    if (reloader != null) {
      reloader.shutdownNow();
      try {
        reloader.awaitTermination(30, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      dropStaged();
      current.release();
    }
  }

  /** Whether the reload thread has stopped (true without one). */
  boolean reloaderStopped() {
    return reloader == null || reloader.isTerminated();
  }

  private Version<T> loadFixed() {
    NativeModel model = NativeModel.load(config.reference(), config.sha256(), config.trustedModels());
    try {
      return prepared(model, model.version(), model.sha256(), true);
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
  }

  private Version<T> load(ModelReference.Resolved resolved) {
    String pin = config.sha256();
    if (pin != null && !pin.equalsIgnoreCase(resolved.sha256())) {
      throw new ModelException("model binary '" + resolved.path() + "' has SHA-256 " + resolved.sha256()
          + ", but the pin (sha256) is " + pin + "; load the pinned binary or change the pin");
    }
    NativeModel model = NativeModel.load(resolved.path(), resolved.sha256(), config.trustedModels());
    try {
      String version = resolved.version() != null ? resolved.version() : model.version();
      return prepared(model, version, resolved.sha256(), false);
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
  }

  private Version<T> prepared(NativeModel model, String version, String sha256, boolean once) {
    T built = prepare == null ? null : prepare.prepare(model, version);
    return new Version<>(model, version, sha256, built, once);
  }

  /** A Flink counter reading one of the slot's counts. */
  private record Reading(AtomicLong count) implements Counter {
    @Override
    public void inc() {
      count.incrementAndGet();
    }

    @Override
    public void inc(long n) {
      count.addAndGet(n);
    }

    @Override
    public void dec() {
      count.decrementAndGet();
    }

    @Override
    public void dec(long n) {
      count.addAndGet(-n);
    }

    @Override
    public long getCount() {
      return count.get();
    }
  }

  @Override
  public String toString() {
    return "ModelSlot(" + config.reference() + ", version " + servingVersion() + ")";
  }
}
