/*
 * A minimal host in C: loads a model binary, prints its info, scores rows of float64 inputs and
 * prints its float64 outputs. It shows the host side of the ABI (docs/abi.md) with nothing but
 * libc and libdl, and checks a binary built for another platform under an emulator
 * (scripts/check_aarch64.sh runs it under qemu-aarch64).
 *
 *   cc -std=c99 -O2 -I operators/abi/include score_host.c -o score_host -ldl
 *   ./score_host ./MODEL.so x0,x1,x2 ROWS.f64    (MODEL as dlopen takes it: a path with a slash)
 *
 * ROWS.f64 holds the rows, row-major, as little-endian float64 (one value per named input).
 * Output: one line per row, the float64 outputs in declared order, "%.17g" separated by spaces.
 * Exit status: 0 scored, 1 usage or I/O error, 2 the model refused to load or to score.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "streamml_model.h"

static void no_release_schema(struct ArrowSchema* s) { s->release = NULL; }
static void no_release_array(struct ArrowArray* a) { a->release = NULL; }

static int fail(struct StreammlError* error, const char* what) {
  fprintf(stderr, "score_host: %s: %s\n", what, error->message ? error->message : "(no message)");
  if (error->release) error->release(error);
  return 2;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: score_host MODEL NAMES(comma-separated) ROWS.f64\n");
    return 1;
  }
  /* The input names. */
  char* names_buf = strdup(argv[2]);
  int64_t n_inputs = 1;
  for (char* p = names_buf; *p; p++) n_inputs += *p == ',';
  char** names = calloc((size_t)n_inputs, sizeof(char*));
  names[0] = names_buf;
  for (int64_t i = 1, j = 0; names_buf[j]; j++)
    if (names_buf[j] == ',') { names_buf[j] = 0; names[i++] = names_buf + j + 1; }

  /* The rows. */
  FILE* f = fopen(argv[3], "rb");
  if (!f) { perror(argv[3]); return 1; }
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  int64_t n_rows = bytes / (int64_t)(8 * n_inputs);
  double* rows = malloc((size_t)bytes + 8);
  if (fread(rows, 1, (size_t)bytes, f) != (size_t)bytes) { perror(argv[3]); return 1; }
  fclose(f);

  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fprintf(stderr, "score_host: cannot load %s: %s\n", argv[1], dlerror()); return 2; }
  StreammlModelInitFn init = (StreammlModelInitFn)dlsym(lib, STREAMML_MODEL_INIT_SYMBOL);
  if (!init) { fprintf(stderr, "score_host: %s exports no %s\n", argv[1], STREAMML_MODEL_INIT_SYMBOL); return 2; }
  struct StreammlModelV1 model;
  struct StreammlError error = {0};
  memset(&model, 0, sizeof model);
  if (init(STREAMML_ABI_VERSION, &model, &error) != STREAMML_OK) return fail(&error, "init");
  fprintf(stderr, "info %s\n", model.info(&model));

  /* Columns: one float64 child per input, read from the row-major rows. */
  struct ArrowSchema schema = {"+s", "", NULL, 0, n_inputs, calloc((size_t)n_inputs, sizeof(void*)), NULL,
                               no_release_schema, NULL};
  struct ArrowArray input = {n_rows, 0, 0, 1, n_inputs, calloc(1, sizeof(void*)),
                             calloc((size_t)n_inputs, sizeof(void*)), NULL, no_release_array, NULL};
  double* columns = malloc(sizeof(double) * (size_t)(n_rows * n_inputs) + 8);
  for (int64_t c = 0; c < n_inputs; c++) {
    for (int64_t r = 0; r < n_rows; r++) columns[c * n_rows + r] = rows[r * n_inputs + c];
    struct ArrowSchema* cs = calloc(1, sizeof *cs);
    *cs = (struct ArrowSchema){"g", names[c], NULL, 0, 0, NULL, NULL, no_release_schema, NULL};
    schema.children[c] = cs;
    struct ArrowArray* ca = calloc(1, sizeof *ca);
    const void** bufs = calloc(2, sizeof(void*));
    bufs[1] = columns + c * n_rows;
    *ca = (struct ArrowArray){n_rows, 0, 0, 2, 0, bufs, NULL, NULL, no_release_array, NULL};
    input.children[c] = ca;
  }

  struct ArrowArray out;
  struct ArrowSchema out_schema;
  if (model.predict(&model, &input, &schema, &out, &out_schema, &error) != STREAMML_OK)
    return fail(&error, "predict");
  if (out.length != n_rows) {
    fprintf(stderr, "score_host: %lld rows in, %lld out\n", (long long)n_rows, (long long)out.length);
    return 2;
  }
  for (int64_t r = 0; r < n_rows; r++) {
    const char* sep = "";
    for (int64_t c = 0; c < out.n_children; c++) {
      if (strcmp(out_schema.children[c]->format, "g") != 0) continue;
      const struct ArrowArray* col = out.children[c];
      const double* values = col->buffers[1];
      printf("%s%.17g", sep, values[col->offset + out.offset + r]);
      sep = " ";
    }
    printf("\n");
  }
  out.release(&out);
  out_schema.release(&out_schema);
  model.release(&model);
  for (int64_t c = 0; c < n_inputs; c++) {
    free((void*)input.children[c]->buffers);
    free(input.children[c]);
    free(schema.children[c]);
  }
  return 0;
}
