package dev.streamml.flink;

/**
 * What a row given by field name does with an input field it lacks: the rule every streamml host
 * follows (the Rust core states it; {@code tests/fixtures/missing_fields.json} is the table of cases
 * pytest and JUnit both run). An absent field is an error for that row; an explicit null is a
 * missing value where the input is nullable. {@link #NULL} reads absent fields as null.
 */
public enum MissingFields {
  /** An absent input field refuses the row, naming the field (the default). */
  ERROR,
  /** An absent input field is read as null. */
  NULL;

  /** {@code "error"} or {@code "null"}, as the Python hosts spell it. */
  public static MissingFields parse(String value) {
    if ("error".equals(value)) {
      return ERROR;
    }
    if ("null".equals(value)) {
      return NULL;
    }
    throw new IllegalArgumentException("missing_fields is '" + value + "', expected \"error\" (an absent "
        + "input field refuses the event) or \"null\" (an absent input field is read as null)");
  }

  /** Why a row without the input field {@code name} is refused: the core's words. */
  public static String absent(String name) {
    return "field '" + name + "' is absent; send null for a missing value, or set missing_fields=\"null\" "
        + "to read absent fields as null";
  }
}
