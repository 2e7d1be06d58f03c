/*
 * linear_model.c: a streamml model binary written in plain C (ABI v1).
 *
 * Copy this file to write your own. It needs only the streamml header, libc
 * and libm; the contract it follows is docs/abi.md.
 *
 * The model: a linear regression over three float64 inputs,
 *
 *     score = 0.5 + 2.0*x0 - 1.0*x1 + 0.25*x2
 *
 * where x0 and x1 are non-nullable and a null x2 counts as 0.0. A NaN or
 * infinite input value is refused with STREAMML_ERROR_INVALID_INPUT, naming
 * the column and the row.
 *
 * Build (from the repository root):
 *
 *     cc -shared -fPIC -O2 -I operators/abi/include \
 *        operators/sdk/examples/c/linear_model.c -o linear_model.so -lm
 *
 * The file reads top to bottom in the order a host uses it:
 *   1. the model's description (the info document) and its parameters;
 *   2. errors: how a message travels back to the host;
 *   3. reading the borrowed input (offsets, validity bitmaps);
 *   4. exporting the output (an Arrow struct array the host will own);
 *   5. predict, the scoring loop;
 *   6. the entry point, streamml_model_init, and release.
 */

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamml_model.h"

/* ---- 1. What the model is -------------------------------------------- */

/*
 * The info document. The host parses it at load time and from then on maps
 * and casts every batch to these inputs, so predict always receives a struct
 * array with exactly x0, x1, x2 (float64), in this order. The string is
 * static: it stays valid for as long as the library is loaded.
 */
static const char INFO_JSON[] =
    "{\"abi_version\": 1,"
    " \"name\": \"c_linear\","
    " \"version\": \"1.0.0\","
    " \"task\": \"regression\","
    " \"framework\": \"c\","
    " \"inputs\": ["
    "{\"name\": \"x0\", \"type\": \"float64\", \"nullable\": false},"
    " {\"name\": \"x1\", \"type\": \"float64\", \"nullable\": false},"
    " {\"name\": \"x2\", \"type\": \"float64\", \"nullable\": true,"
    " \"description\": \"a null x2 counts as 0.0\"}],"
    " \"outputs\": ["
    "{\"name\": \"score\", \"type\": \"float64\", \"nullable\": false}],"
    " \"drift_reference\": null,"
    " \"metadata\": {\"description\":"
    " \"score = 0.5 + 2.0*x0 - 1.0*x1 + 0.25*x2; the C example model binary\"}}";

#define N_INPUTS 3

/* The declared inputs, in declared order. */
static const char* const INPUT_NAMES[N_INPUTS] = {"x0", "x1", "x2"};
static const int INPUT_NULLABLE[N_INPUTS] = {0, 0, 1};

/* The model's state, behind the table's private_data. A real model would
 * read its parameters from a file or compile them in; predict only reads
 * them, which is what makes it re-entrant. */
struct linear_model {
  double intercept;
  double weights[N_INPUTS];
};

/* ---- 2. Errors ---------------------------------------------------------- */

/* The release callback of every error this library sets. */
static void release_error(struct StreammlError* error) {
  free(error->message);
  error->message = NULL;
  error->release = NULL;
}

/*
 * Fill `error` with a printf-style message on the heap and return `status`.
 * If the message cannot be allocated, the host still gets the status (and
 * reports "no message").
 */
static StreammlStatus fail(struct StreammlError* error, StreammlStatus status,
                           const char* format, ...) {
  if (error == NULL) return status;
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int length = vsnprintf(NULL, 0, format, args);
  va_end(args);
  char* message = length < 0 ? NULL : malloc((size_t)length + 1);
  if (message != NULL) {
    vsnprintf(message, (size_t)length + 1, format, again);
    error->message = message;
    error->release = release_error;
  }
  va_end(again);
  return status;
}

/* ---- 3. Reading the borrowed input -------------------------------------- */

/*
 * One float64 input column, resolved to plain pointers so the scoring loop
 * reads row i as values[i]. Two offsets are folded in: the struct array's
 * own offset (input->offset) and the child's (child->offset). A host may
 * hand over a slice of a bigger batch, so neither is assumed to be 0.
 */
struct f64_column {
  const double* values;    /* values[i] is row i of the batch */
  const uint8_t* validity; /* NULL when the column has no nulls */
  int64_t validity_bit;    /* bit of row 0 in `validity` */
};

static int is_valid(const struct f64_column* column, int64_t row) {
  if (column->validity == NULL) return 1;
  int64_t bit = column->validity_bit + row;
  return (column->validity[bit / 8] >> (bit % 8)) & 1;
}

/* Check that the input is the struct<x0, x1, x2: float64> the info declares.
 * The host guarantees this; checking costs nothing and keeps a buggy or
 * foreign host from making us read out of bounds. */
static StreammlStatus check_input(const struct ArrowArray* input,
                                  const struct ArrowSchema* schema,
                                  struct StreammlError* error) {
  if (input == NULL || schema == NULL || input->release == NULL) {
    return fail(error, STREAMML_ERROR_INVALID_INPUT,
                "predict was given a null or released input");
  }
  if (schema->format == NULL || strcmp(schema->format, "+s") != 0) {
    return fail(error, STREAMML_ERROR_INVALID_INPUT,
                "the input schema has format '%s', expected a struct ('+s')",
                schema->format ? schema->format : "(null)");
  }
  if (schema->n_children != N_INPUTS || input->n_children != N_INPUTS) {
    return fail(error, STREAMML_ERROR_INVALID_INPUT,
                "the input has %" PRId64 " fields, expected %d (x0, x1, x2)",
                schema->n_children, N_INPUTS);
  }
  if (input->null_count != 0 && input->n_buffers > 0 && input->buffers[0] != NULL) {
    return fail(error, STREAMML_ERROR_INVALID_INPUT,
                "the input struct has null rows; this model scores whole rows only");
  }
  for (int c = 0; c < N_INPUTS; c++) {
    const struct ArrowSchema* field = schema->children[c];
    const struct ArrowArray* child = input->children[c];
    const char* name = field->name ? field->name : "(null)";
    if (strcmp(name, INPUT_NAMES[c]) != 0) {
      return fail(error, STREAMML_ERROR_INVALID_INPUT,
                  "input field %d is named '%s', expected '%s'", c, name,
                  INPUT_NAMES[c]);
    }
    if (field->format == NULL || strcmp(field->format, "g") != 0) {
      return fail(error, STREAMML_ERROR_INVALID_INPUT,
                  "input field '%s' has format '%s', expected float64 ('g')",
                  INPUT_NAMES[c], field->format ? field->format : "(null)");
    }
    if (child->n_buffers != 2 || child->length < input->offset + input->length) {
      return fail(error, STREAMML_ERROR_INVALID_INPUT,
                  "input column '%s' has %" PRId64 " buffers and %" PRId64
                  " rows; expected 2 buffers and at least %" PRId64 " rows",
                  INPUT_NAMES[c], child->n_buffers, child->length,
                  input->offset + input->length);
    }
  }
  return STREAMML_OK;
}

static struct f64_column resolve_column(const struct ArrowArray* input, int c) {
  const struct ArrowArray* child = input->children[c];
  int64_t first = input->offset + child->offset; /* physical index of row 0 */
  struct f64_column column;
  column.values = (const double*)child->buffers[1] + first;
  /* buffers[0] may be NULL when the column has no nulls. */
  column.validity = child->null_count == 0 ? NULL : (const uint8_t*)child->buffers[0];
  column.validity_bit = first;
  return column;
}

/* ---- 4. Exporting the output -------------------------------------------- */

/*
 * The output is a struct array with one float64 child, `score`. Each
 * ArrowArray/ArrowSchema owns what its private_data points to and frees it
 * in its release callback. The child is released on its own (a consumer may
 * move it out of the parent), so it owns its values; the parent releases the
 * child only if it is still there (release != NULL).
 */

/* What the `score` column owns. */
struct column_private {
  const void* buffers[2]; /* validity (NULL: no nulls), values */
  double* values;
};

/* What the struct array owns: its one child and the pointer arrays. */
struct batch_private {
  struct ArrowArray column;
  struct ArrowArray* children[1];
  const void* buffers[1]; /* the struct's validity: NULL, no null rows */
};

static void release_column(struct ArrowArray* array) {
  struct column_private* private_data = array->private_data;
  free(private_data->values);
  free(private_data);
  array->release = NULL;
}

static void release_batch(struct ArrowArray* array) {
  struct batch_private* private_data = array->private_data;
  if (private_data->column.release != NULL) {
    private_data->column.release(&private_data->column);
  }
  free(private_data);
  array->release = NULL;
}

/* The schema's strings are static; only the parent allocates. */
struct schema_private {
  struct ArrowSchema column;
  struct ArrowSchema* children[1];
};

static void release_column_schema(struct ArrowSchema* schema) {
  schema->release = NULL;
}

static void release_batch_schema(struct ArrowSchema* schema) {
  struct schema_private* private_data = schema->private_data;
  if (private_data->column.release != NULL) {
    private_data->column.release(&private_data->column);
  }
  free(private_data);
  schema->release = NULL;
}

/* Move `scores` (length rows, malloc'd) into `out` / `out_schema`. On
 * failure `scores` is freed and the outputs stay untouched. */
static StreammlStatus export_scores(double* scores, int64_t length,
                                    struct ArrowArray* out,
                                    struct ArrowSchema* out_schema,
                                    struct StreammlError* error) {
  struct column_private* column = malloc(sizeof *column);
  struct batch_private* batch = malloc(sizeof *batch);
  struct schema_private* schema = malloc(sizeof *schema);
  if (column == NULL || batch == NULL || schema == NULL) {
    free(column);
    free(batch);
    free(schema);
    free(scores);
    return fail(error, STREAMML_ERROR_INTERNAL, "out of memory exporting %" PRId64 " scores",
                length);
  }
  column->buffers[0] = NULL;
  column->buffers[1] = scores;
  column->values = scores;
  batch->column = (struct ArrowArray){
      .length = length, .null_count = 0, .offset = 0, .n_buffers = 2,
      .n_children = 0, .buffers = column->buffers, .children = NULL,
      .dictionary = NULL, .release = release_column, .private_data = column};
  batch->children[0] = &batch->column;
  batch->buffers[0] = NULL;
  *out = (struct ArrowArray){
      .length = length, .null_count = 0, .offset = 0, .n_buffers = 1,
      .n_children = 1, .buffers = batch->buffers, .children = batch->children,
      .dictionary = NULL, .release = release_batch, .private_data = batch};

  /* flags 0: score is not nullable, as the info declares. */
  schema->column = (struct ArrowSchema){
      .format = "g", .name = "score", .metadata = NULL, .flags = 0,
      .n_children = 0, .children = NULL, .dictionary = NULL,
      .release = release_column_schema, .private_data = NULL};
  schema->children[0] = &schema->column;
  *out_schema = (struct ArrowSchema){
      .format = "+s", .name = "", .metadata = NULL, .flags = 0,
      .n_children = 1, .children = schema->children, .dictionary = NULL,
      .release = release_batch_schema, .private_data = schema};
  return STREAMML_OK;
}

/* ---- 5. predict ---------------------------------------------------------- */

/*
 * Score one batch. The input is BORROWED: read it, never release it, keep
 * no pointer into it after returning. Many threads may be in here at once,
 * so everything mutable is local. On an error the outputs are left as the
 * host passed them (released) and `error` says what went wrong.
 */
static StreammlStatus predict(const struct StreammlModelV1* model,
                              const struct ArrowArray* input,
                              const struct ArrowSchema* input_schema,
                              struct ArrowArray* output,
                              struct ArrowSchema* output_schema,
                              struct StreammlError* error) {
  StreammlStatus status = check_input(input, input_schema, error);
  if (status != STREAMML_OK) return status;
  const struct linear_model* params = model->private_data;

  struct f64_column columns[N_INPUTS];
  for (int c = 0; c < N_INPUTS; c++) columns[c] = resolve_column(input, c);

  int64_t rows = input->length;
  /* malloc(0) may return NULL; ask for at least one value. */
  double* scores = malloc(sizeof(double) * (size_t)(rows > 0 ? rows : 1));
  if (scores == NULL) {
    return fail(error, STREAMML_ERROR_INTERNAL, "out of memory for %" PRId64 " scores", rows);
  }
  /* Row by row, columns in declared order: the first bad value found is the
   * one a reader scanning the batch would find first. */
  for (int64_t row = 0; row < rows; row++) {
    double score = params->intercept;
    for (int c = 0; c < N_INPUTS; c++) {
      double value = 0.0; /* a null counts as 0.0 */
      if (is_valid(&columns[c], row)) {
        value = columns[c].values[row];
        if (!isfinite(value)) {
          free(scores);
          return fail(error, STREAMML_ERROR_INVALID_INPUT,
                      "non-finite value in column '%s' at row %" PRId64,
                      INPUT_NAMES[c], row);
        }
      } else if (!INPUT_NULLABLE[c]) {
        free(scores);
        return fail(error, STREAMML_ERROR_INVALID_INPUT,
                    "column '%s' is not nullable but row %" PRId64 " is null",
                    INPUT_NAMES[c], row);
      }
      score += params->weights[c] * value;
    }
    scores[row] = score;
  }
  return export_scores(scores, rows, output, output_schema, error);
}

/* ---- 6. The entry point and release -------------------------------------- */

static const char* info(const struct StreammlModelV1* model) {
  (void)model;
  return INFO_JSON;
}

/* Called once, when no predict is in flight. */
static void release(struct StreammlModelV1* model) {
  free(model->private_data);
  model->private_data = NULL;
  model->release = NULL;
}

/*
 * The one exported symbol. The host asks for an ABI version; a binary that
 * does not speak it refuses and says which versions it does speak.
 */
STREAMML_EXPORT StreammlStatus streamml_model_init(uint32_t abi_version,
                                                   void* out_model,
                                                   struct StreammlError* error) {
  if (abi_version != STREAMML_ABI_VERSION) {
    return fail(error, STREAMML_ERROR_UNSUPPORTED_ABI,
                "this binary speaks streamml ABI v%d only; the host asked for v%" PRIu32,
                STREAMML_ABI_VERSION, abi_version);
  }
  if (out_model == NULL) {
    return fail(error, STREAMML_ERROR_INTERNAL, "init was given a null model table");
  }
  struct linear_model* params = malloc(sizeof *params);
  if (params == NULL) {
    return fail(error, STREAMML_ERROR_INTERNAL, "out of memory for the model");
  }
  *params = (struct linear_model){.intercept = 0.5, .weights = {2.0, -1.0, 0.25}};

  struct StreammlModelV1* table = out_model;
  memset(table, 0, sizeof *table); /* also zeroes `reserved` */
  table->abi_version = STREAMML_ABI_VERSION;
  table->private_data = params;
  table->info = info;
  table->predict = predict;
  table->release = release;
  return STREAMML_OK;
}
