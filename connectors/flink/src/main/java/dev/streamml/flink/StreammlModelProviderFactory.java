package dev.streamml.flink;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.factories.ModelProviderFactory;
import org.apache.flink.table.ml.ModelProvider;

/**
 * The {@code 'provider' = 'streamml'} model provider of Flink SQL: the model binary runs in the
 * task manager's process, and {@code ML_PREDICT} with {@code 'async' = 'true'} scores in
 * micro-batches.
 *
 * <pre>{@code
 * CREATE MODEL m INPUT (x0 DOUBLE, ..., x31 DOUBLE) OUTPUT (probability DOUBLE)
 *   WITH ('provider' = 'streamml', 'path' = '/models/r1.so');
 * SELECT * FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(x0, ..., x31),
 *   MAP['async', 'true', 'max-concurrent-operations', '1024']);
 * }</pre>
 *
 * <p>The INPUT columns are the model binary's inputs in its declared order; each OUTPUT column
 * names one of its outputs, except {@code model_version STRING}, which (unless the model has an
 * output of that name) holds the version that scored the row: the model directory's version name,
 * or the binary's own. With the {@code challengers} option an OUTPUT column {@code shadow
 * ARRAY<ROW<model_version STRING, <output> <type>, ...>>} holds the versions that scored the row
 * but did not serve it; with {@code canary} and {@code canary-id}, {@code served_by STRING} names
 * the side that served it ({@code docs/lifecycle.md}, "Flink SQL").
 */
public class StreammlModelProviderFactory implements ModelProviderFactory {
  public static final String IDENTIFIER = "streamml";

  public static final ConfigOption<String> PATH = ConfigOptions.key("path").stringType().noDefaultValue()
      .withDescription("The model binary (.so) to load on every task manager, or a model reference: a model"
          + " directory (its champion alias) or DIR@ALIAS, re-resolved every reload-interval"
          + " (docs/lifecycle.md).");
  public static final ConfigOption<Duration> RELOAD_INTERVAL = ConfigOptions.key("reload-interval")
      .durationType().noDefaultValue()
      .withDescription("Re-resolve the path this often and swap a new version in between batches. Default:"
          + " 30 s for a model directory; a binary's path is loaded once.");
  public static final ConfigOption<String> SHA256 = ConfigOptions.key("sha256").stringType().noDefaultValue()
      .withDescription("Refuse the binary unless its SHA-256 is this (lowercase hex).");
  public static final ConfigOption<String> TRUSTED_MODELS = ConfigOptions.key("trusted-models").stringType()
      .noDefaultValue()
      .withDescription("A trust file on every task manager (one SHA-256 per line, # comments): any binary"
          + " not listed is refused before its code runs. Default: the system property"
          + " streamml.trusted-models, else $STREAMML_TRUSTED_MODELS.");
  public static final ConfigOption<Integer> MAX_BATCH_ROWS = ConfigOptions.key("max-batch-rows").intType()
      .defaultValue(BatchPolicy.DEFAULT.maxBatchRows())
      .withDescription("Async ML_PREDICT: flush a batch at this many rows.");
  public static final ConfigOption<Duration> MAX_WAIT = ConfigOptions.key("max-wait").durationType()
      .defaultValue(BatchPolicy.DEFAULT.maxWait())
      .withDescription("Async ML_PREDICT: flush a batch once its oldest row has waited this long.");

  public static final ConfigOption<String> CHALLENGERS = ConfigOptions.key("challengers").stringType()
      .noDefaultValue()
      .withDescription("Comma-separated model references scored in shadow on every batch the champion scores,"
          + " each resolved, reloaded and trusted like 'path' (not pinned by 'sha256'); their outputs go to an"
          + " OUTPUT column shadow ARRAY<ROW<model_version STRING, <output> <type>, ...>> (docs/lifecycle.md).");
  public static final ConfigOption<Double> CANARY = ConfigOptions.key("canary").doubleType().noDefaultValue()
      .withDescription("Serve this fraction of events (0..1) with the one challenger instead of the champion:"
          + " an event whose canary share (SHA-256 of its id) is below it; needs 'canary-id'.");
  public static final ConfigOption<String> CANARY_ID = ConfigOptions.key("canary-id").stringType()
      .noDefaultValue()
      .withDescription("The INPUT column (listed in the DESCRIPTOR) holding the event id the canary rule reads;"
          + " the model binary does not read it.");

  @Override
  public ModelProvider createModelProvider(Context context) {
    FactoryUtil.ModelProviderFactoryHelper helper = FactoryUtil.createModelProviderFactoryHelper(this, context);
    helper.validate();
    var options = helper.getOptions();
    return new StreammlModelProvider(
        options.get(PATH),
        options.getOptional(SHA256).orElse(null),
        options.getOptional(TRUSTED_MODELS).orElse(null),
        options.getOptional(RELOAD_INTERVAL).orElse(null),
        new BatchPolicy(options.get(MAX_BATCH_ROWS), options.get(MAX_WAIT)),
        context.getCatalogModel().getResolvedInputSchema(),
        context.getCatalogModel().getResolvedOutputSchema(),
        new StreammlModelProvider.Challengers(challengers(options.getOptional(CHALLENGERS).orElse("")),
            options.getOptional(CANARY).orElse(0.0), options.getOptional(CANARY_ID).orElse(null)));
  }

  /** The references of the {@code challengers} option, trimmed, empty entries refused. */
  static List<String> challengers(String option) {
    if (option.isBlank()) {
      return List.of();
    }
    List<String> out = new ArrayList<>();
    for (String part : option.split(",", -1)) {
      if (part.isBlank()) {
        throw new ModelException("'challengers' = '" + option + "' has an empty entry; list model references"
            + " separated by commas");
      }
      out.add(part.trim());
    }
    return out;
  }

  @Override
  public String factoryIdentifier() {
    return IDENTIFIER;
  }

  @Override
  public Set<ConfigOption<?>> requiredOptions() {
    return Set.of(PATH);
  }

  @Override
  public Set<ConfigOption<?>> optionalOptions() {
    return Set.of(SHA256, TRUSTED_MODELS, RELOAD_INTERVAL, MAX_BATCH_ROWS, MAX_WAIT, CHALLENGERS, CANARY, CANARY_ID);
  }
}
