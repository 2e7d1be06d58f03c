/*
 * streamml model-binary ABI, version 1.
 *
 * A model binary is a shared library that exports one symbol,
 * `streamml_model_init`. The host asks it for a function table of a given
 * ABI version; the table gives the model's description (JSON) and a
 * re-entrant `predict` over Arrow C Data Interface struct arrays.
 *
 * The full contract (ownership, threading, the info JSON, error handling)
 * is in docs/abi.md. This header is the single source of truth for the
 * names and layouts; the Rust mirror is operators/abi/src/ffi.rs.
 */
#ifndef STREAMML_MODEL_H
#define STREAMML_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Arrow C Data Interface (verbatim from the Arrow specification) ---- */
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
  const char* format;
  const char* name;
  const char* metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema** children;
  struct ArrowSchema* dictionary;
  void (*release)(struct ArrowSchema*);
  void* private_data;
};

struct ArrowArray {
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void** buffers;
  struct ArrowArray** children;
  struct ArrowArray* dictionary;
  void (*release)(struct ArrowArray*);
  void* private_data;
};

#endif /* ARROW_C_DATA_INTERFACE */

/* ---- streamml ABI ---- */

/* The ABI version this header describes. */
#define STREAMML_ABI_VERSION 1

/* The one symbol a model binary exports. */
#define STREAMML_MODEL_INIT_SYMBOL "streamml_model_init"

/* Status codes returned by init and predict. 0 is success. */
typedef int32_t StreammlStatus;
#define STREAMML_OK 0
/* init: the binary does not speak the requested ABI version. */
#define STREAMML_ERROR_UNSUPPORTED_ABI 1
/* predict: the input is not what the model accepts (a value, a type). */
#define STREAMML_ERROR_INVALID_INPUT 2
/* anything else: a bug, an allocation failure, a caught panic. */
#define STREAMML_ERROR_INTERNAL 3

/*
 * An error message handed from the callee to the caller.
 *
 * The caller zero-initialises it before a call. On a non-zero status the
 * callee sets `message` (NUL-terminated UTF-8) and `release`; the caller
 * reads the message and then calls `release` if it is not NULL.
 */
struct StreammlError {
  char* message;
  void (*release)(struct StreammlError* error);
  void* private_data;
};

/*
 * The function table of ABI version 1, filled in by `streamml_model_init`.
 *
 * All function pointers are non-NULL after a successful init. Every call
 * receives the table itself, so `private_data` can hold the model's state.
 */
struct StreammlModelV1 {
  /* Set by init to 1. */
  uint32_t abi_version;
  /* Owned by the model; the host never reads it. */
  void* private_data;

  /*
   * The model description as NUL-terminated UTF-8 JSON (docs/abi.md, "The
   * info document"). The pointer stays valid until `release`.
   */
  const char* (*info)(const struct StreammlModelV1* model);

  /*
   * Scores one batch.
   *
   * `input` / `input_schema`: a struct array whose children are the model's
   * input fields, in the order and with the types the info declares. They
   * are BORROWED: the model reads them during the call, must not release
   * them and must not keep pointers into them after it returns.
   *
   * `output` / `output_schema`: on STREAMML_OK the model has moved into them
   * a struct array with one child per declared output field and exactly
   * `input->length` rows. The host owns them and releases them.
   *
   * On a non-zero status `output` and `output_schema` are left released
   * (release == NULL) and `error` is set.
   *
   * Re-entrant: the host may call predict from many threads at once on the
   * same model. It must never abort the process.
   */
  StreammlStatus (*predict)(const struct StreammlModelV1* model,
                            const struct ArrowArray* input,
                            const struct ArrowSchema* input_schema,
                            struct ArrowArray* output,
                            struct ArrowSchema* output_schema,
                            struct StreammlError* error);

  /* Frees the model. Called once; no call is in flight when it is. */
  void (*release)(struct StreammlModelV1* model);

  /* Zero; room for later versions to grow the table. */
  void* reserved[8];
};

/*
 * The entry point. `out_model` points to a zeroed `StreammlModelV1` when
 * `abi_version` is 1. A binary that does not speak `abi_version` returns
 * STREAMML_ERROR_UNSUPPORTED_ABI and says which versions it speaks in the
 * error.
 */
typedef StreammlStatus (*StreammlModelInitFn)(uint32_t abi_version,
                                              void* out_model,
                                              struct StreammlError* error);

#if defined(_WIN32)
#define STREAMML_EXPORT __declspec(dllexport)
#else
#define STREAMML_EXPORT __attribute__((visibility("default")))
#endif

STREAMML_EXPORT StreammlStatus streamml_model_init(uint32_t abi_version,
                                                   void* out_model,
                                                   struct StreammlError* error);

#ifdef __cplusplus
}
#endif

#endif /* STREAMML_MODEL_H */
