package dev.streamml.flink;

/**
 * Any failure of streamml's native code: a model binary that cannot be loaded, a batch that does
 * not fit the model's inputs, a model that failed or panicked while scoring. The message names the
 * file, column or row and the reason.
 */
public class ModelException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public ModelException(String message) {
    super(message);
  }

  public ModelException(String message, Throwable cause) {
    super(message, cause);
  }
}
