/* `medgemma generate`: one request from the command line (API.md). Builds the
 * Gemma 3 chat prompt (system folded into the user turn, the prompt text then
 * the images, as /analyze does), runs it through the request pipeline
 * (pipeline/, shared with the HTTP worker) and prints the answer
 * as it is generated (thinking trace removed), or with --json the same JSON
 * object /analyze returns. Errors go to stderr with a non-zero exit status;
 * prompts and answers are never logged. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "http/reply_json.h"
#include "cli/dicom_dir.h"
#include "image/image.h"
#include "pipeline/pipeline.h"

#define MAX_IMAGES 128

static void usage(FILE *f) {
    fprintf(f,
            "usage: medgemma generate --model DIR --prompt TEXT [--image FILE]... [--system TEXT]\n"
            "                         [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]\n"
            "                         [--backend auto|cpu|cuda] [--threads N] [--max-context N]\n"
            "                         [--precision exact|bf16] [--weights bf16|q8]\n"
            "                         [--pad-to-square] [--json] [--json-schema FILE] [--thinking-budget N]\n"
            "Runs one request and prints the answer (MedGemma's thinking trace removed).\n"
            "  --model DIR        Hugging Face model dir (env MEDGEMMA_MODEL_DIR)\n"
            "  --prompt TEXT      the user's message\n"
            "  --image FILE       a PNG, JPEG or single-frame DICOM, after the prompt text (repeatable, up "
            "to %d)\n"
            "  --dicom-dir DIR    the DICOM files of DIR: a CT/MR series (sorted, sampled to 85 slices,\n"
            "                     windowed, each slice then \"SLICE n\", the prompt last) or X-rays/photos\n"
            "  --dicom-window N   grayscale DICOM: the file's Nth WindowCenter/WindowWidth pair (default 0)\n"
            "  --system TEXT      system instruction (folded into the user turn)\n"
            "  --max-tokens N     most tokens to generate (default 512)\n"
            "  --temperature T    0 = greedy (default); else sampling with --top-p (1) / --top-k (0 = off)\n"
            "  --seed S           sampling seed (default 0)\n"
            "  --backend B        auto (default; CUDA when built with it and a GPU is present), cpu, cuda\n"
            "                     (env MEDGEMMA_BACKEND)\n"
            "  --threads N        CPU threads (default: all cores)\n"
            "  --max-context N    KV cache positions (default min(model, 32768))\n"
            "  --precision P      CPU GEMMs: exact (default, fp32) or bf16 (faster; env MEDGEMMA_PRECISION)\n"
            "  --weights W        CPU weights: bf16 (default) or q8 (8-bit, quantized at load;\n"
            "                     env MEDGEMMA_WEIGHTS). README \"CPU precision\" gives the accuracy cost\n"
            "  --pad-to-square    zero-pad images to a square first (MedGemma's X-ray notebooks)\n"
            "  --json             print the /analyze JSON object instead of the text\n"
            "  --json-schema FILE constrain the answer to JSON valid under the schema in FILE\n"
            "                     (grammar/README.md: subset, compact whitespace)\n"
            "  --thinking-budget N  with --json-schema: tokens of a thinking trace before it is closed\n"
            "                     (default 1024; -1 = no trace)\n"
            "Exit status: 0 success, 1 bad input or model, 2 usage.\n",
            MAX_IMAGES);
}

/* Whole-string numbers; 0 on success. */
static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int read_file(const char *path, uint8_t **bytes, size_t *n, Error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return error_set(err, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            if (cap > IMAGE_DEFAULT_MAX_ENCODED_BYTES) {
                free(buf);
                fclose(f);
                return error_set(err, "'%s' is larger than %zu bytes", path,
                                 (size_t)IMAGE_DEFAULT_MAX_ENCODED_BYTES);
            }
            uint8_t *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return error_set(err, "out of memory reading '%s'", path);
    if (bad) {
        free(buf);
        return error_set(err, "cannot read '%s'", path);
    }
    *bytes = buf;
    *n = len;
    return 0;
}

/* Streams the visible answer to stdout as it grows. */
static void print_text(void *user, const char *text, size_t n) {
    fwrite(text, 1, n, stdout);
    fflush(stdout);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = getenv("MEDGEMMA_MODEL_DIR"), *prompt = NULL, *system = NULL;
    const char *backend_name = getenv("MEDGEMMA_BACKEND");
    const char *precision = NULL, *weights = NULL; /* NULL: the engine reads the environment */
    const char *image_paths[MAX_IMAGES];
    const char *dicom_dir = NULL;
    int n_images = 0, json = 0, pad = 0;
    const char *schema_path = NULL;
    long thinking_budget = 0, dicom_window = 0;
    long max_tokens = 512, seed = 0, top_k = 0, threads = 0, max_context = 0;
    float temperature = 0.0f, top_p = 1.0f;
    enum {
        O_MODEL = 1,
        O_PROMPT,
        O_IMAGE,
        O_DICOM_DIR,
        O_DICOM_WINDOW,
        O_SYSTEM,
        O_MAXTOK,
        O_TEMP,
        O_TOPP,
        O_TOPK,
        O_SEED,
        O_BACKEND,
        O_THREADS,
        O_MAXCTX,
        O_PRECISION,
        O_WEIGHTS,
        O_PAD,
        O_JSON,
        O_SCHEMA,
        O_THINK,
        O_HELP
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        {"prompt", required_argument, 0, O_PROMPT},
        {"image", required_argument, 0, O_IMAGE},
        {"dicom-dir", required_argument, 0, O_DICOM_DIR},
        {"dicom-window", required_argument, 0, O_DICOM_WINDOW},
        {"system", required_argument, 0, O_SYSTEM},
        {"max-tokens", required_argument, 0, O_MAXTOK},
        {"temperature", required_argument, 0, O_TEMP},
        {"top-p", required_argument, 0, O_TOPP},
        {"top-k", required_argument, 0, O_TOPK},
        {"seed", required_argument, 0, O_SEED},
        {"backend", required_argument, 0, O_BACKEND},
        {"threads", required_argument, 0, O_THREADS},
        {"max-context", required_argument, 0, O_MAXCTX},
        {"precision", required_argument, 0, O_PRECISION},
        {"weights", required_argument, 0, O_WEIGHTS},
        {"pad-to-square", no_argument, 0, O_PAD},
        {"json", no_argument, 0, O_JSON},
        {"json-schema", required_argument, 0, O_SCHEMA},
        {"thinking-budget", required_argument, 0, O_THINK},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case O_MODEL:
            model_dir = optarg;
            break;
        case O_PROMPT:
            prompt = optarg;
            break;
        case O_SYSTEM:
            system = optarg;
            break;
        case O_DICOM_DIR:
            dicom_dir = optarg;
            break;
        case O_DICOM_WINDOW:
            bad = parse_long(optarg, 0, 63, &dicom_window) ? "--dicom-window (0..63)" : NULL;
            break;
        case O_IMAGE:
            if (n_images == MAX_IMAGES) {
                fprintf(stderr, "generate: more than %d --image files\n", MAX_IMAGES);
                return 2;
            }
            image_paths[n_images++] = optarg;
            break;
        case O_MAXTOK:
            bad = parse_long(optarg, 1, 1 << 20, &max_tokens) ? "--max-tokens (1..1048576)" : NULL;
            break;
        case O_TEMP:
            bad = parse_float(optarg, 0, 100, &temperature) ? "--temperature (0..100)" : NULL;
            break;
        case O_TOPP:
            bad = parse_float(optarg, 0, 1, &top_p) || top_p <= 0 ? "--top-p (0 < p <= 1)" : NULL;
            break;
        case O_TOPK:
            bad = parse_long(optarg, 0, 1 << 20, &top_k) ? "--top-k (0..1048576)" : NULL;
            break;
        case O_SEED:
            bad = parse_long(optarg, 0, 0x7fffffffL, &seed) ? "--seed (0..2147483647)" : NULL;
            break;
        case O_BACKEND:
            backend_name = optarg;
            break;
        case O_PRECISION:
            precision = optarg;
            break;
        case O_WEIGHTS:
            weights = optarg;
            break;
        case O_THREADS:
            bad = parse_long(optarg, 0, 1024, &threads) ? "--threads (0..1024)" : NULL;
            break;
        case O_MAXCTX:
            bad = parse_long(optarg, 1, 1 << 24, &max_context) ? "--max-context (1..16777216)" : NULL;
            break;
        case O_PAD:
            pad = 1;
            break;
        case O_JSON:
            json = 1;
            break;
        case O_SCHEMA:
            schema_path = optarg;
            break;
        case O_THINK:
            bad =
                parse_long(optarg, -1, 1 << 20, &thinking_budget) ? "--thinking-budget (-1..1048576)" : NULL;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "generate: bad value '%s' for %s\n", optarg, bad);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "generate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!model_dir || !*model_dir || !prompt) {
        fprintf(stderr, "generate: --model and --prompt are required\n");
        usage(stderr);
        return 2;
    }
    BackendKind backend = BACKEND_AUTO;
    if (backend_name && !strcmp(backend_name, "cpu"))
        backend = BACKEND_CPU;
    else if (backend_name && !strcmp(backend_name, "cuda"))
        backend = BACKEND_CUDA;
    else if (backend_name && strcmp(backend_name, "auto") != 0) {
        fprintf(stderr, "generate: --backend must be auto, cpu or cuda (got '%s')\n", backend_name);
        return 2;
    }
    if (dicom_dir && n_images > 0) {
        fprintf(stderr, "generate: use --image or --dicom-dir, not both\n");
        return 2;
    }
    if (!prompt[0] && n_images == 0 && !dicom_dir) {
        fprintf(stderr, "generate: the prompt is empty\n");
        return 1;
    }

    int rc = 1;
    Error err = {{0}};
    Pipeline *pipeline = NULL;
    uint8_t *files[MAX_IMAGES] = {0};
    uint8_t **dicom_files = NULL;
    size_t *dicom_sizes = NULL;
    PipelineImage *dicom_images = NULL;
    int n_dicom = 0;
    size_t sizes[MAX_IMAGES] = {0};
    PipelineImage images[MAX_IMAGES];
    PipelineResult res = {0};
    double t0 = now_ms();
    uint8_t *schema = NULL;
    size_t schema_len = 0;
    if (schema_path && read_file(schema_path, &schema, &schema_len, &err) != 0) {
        fprintf(stderr, "generate: --json-schema: %s\n", err.message);
        goto done;
    }
    char *schema_text = schema ? realloc(schema, schema_len + 1) : NULL;
    if (schema) {
        if (!schema_text) {
            fprintf(stderr, "generate: out of memory\n");
            goto done;
        }
        schema = (uint8_t *)schema_text;
        schema_text[schema_len] = 0;
    }

    /* images are checked before the model is loaded: bad input fails fast */
    for (int i = 0; i < n_images; i++) {
        ImageInfo info;
        if (read_file(image_paths[i], &files[i], &sizes[i], &err) != 0 ||
            image_probe(files[i], sizes[i], NULL, &info, &err) != 0) {
            fprintf(stderr, "generate: image '%s': %s\n", image_paths[i], err.message);
            goto done;
        }
        images[i] = (PipelineImage){files[i], sizes[i], image_paths[i]};
    }
    if (dicom_dir) { /* image/dicom sorts, samples and windows them; errors name them dicom[i] */
        if (dicom_dir_read(dicom_dir, 4096, &dicom_files, &dicom_sizes, &n_dicom, &err) != 0) {
            fprintf(stderr, "generate: --dicom-dir: %s\n", err.message);
            goto done;
        }
        if (!(dicom_images = calloc((size_t)n_dicom, sizeof *dicom_images))) {
            fprintf(stderr, "generate: out of memory\n");
            goto done;
        }
        for (int i = 0; i < n_dicom; i++)
            dicom_images[i] = (PipelineImage){dicom_files[i], dicom_sizes[i], "--dicom-dir file"};
    }
    EngineOptions eo = {model_dir, backend, (int)threads, (int)max_context, precision, weights};
    if (pipeline_open(&pipeline, &eo, 0, &err) != 0) {
        fprintf(stderr, "generate: %s\n", err.message);
        goto done;
    }
    if ((n_images > 0 || dicom_dir) && pipeline_info(pipeline)->image_tokens == 0) {
        fprintf(stderr, "generate: %s is a text-only model; --image needs a model with a vision tower\n",
                model_dir);
        goto done;
    }

    /* the chat prompt: [system], user = prompt text, then the images (with --dicom-dir
     * the pipeline lays the user turn out once the files are decoded) */
    ChatPart sys_part = {CHAT_PART_TEXT, system};
    ChatPart user_parts[MAX_IMAGES + 1];
    int n_parts = 0;
    if (prompt[0])
        user_parts[n_parts++] = (ChatPart){CHAT_PART_TEXT, prompt};
    for (int i = 0; i < n_images; i++)
        user_parts[n_parts++] = (ChatPart){CHAT_PART_IMAGE, NULL};
    ChatMessage msgs[2];
    int n_msgs = 0;
    if (system)
        msgs[n_msgs++] = (ChatMessage){"system", &sys_part, 1};
    msgs[n_msgs++] = (ChatMessage){"user", user_parts, n_parts};
    PipelineRequest rq = {
        .messages = msgs,
        .n_messages = n_msgs,
        .images = dicom_dir ? dicom_images : images,
        .n_images = dicom_dir ? n_dicom : n_images,
        .series = dicom_dir ? PIPELINE_SERIES_DICOM : PIPELINE_SERIES_NONE,
        .dicom_window = (int)dicom_window,
        .pad_to_square = pad,
        .max_tokens = (int)max_tokens,
        .temperature = temperature,
        .top_k = (int)top_k,
        .top_p = top_p,
        .seed = (uint64_t)seed,
        .format = schema ? PIPELINE_JSON_SCHEMA : PIPELINE_TEXT,
        .json_schema = schema_text,
        .thinking_budget = (int)thinking_budget,
        .on_text = json ? NULL : print_text,
    };
    int engine_rc = 0;
    int prc = pipeline_run(pipeline, &rq, &res, &engine_rc, &err);
    if (prc == PIPELINE_ERR_SCHEMA) {
        fprintf(stderr, "generate: --json-schema %s: %s\n", schema_path, err.message);
        goto done;
    } else if (prc != 0) {
        fprintf(stderr, "generate: %s\n", err.message);
        goto done;
    }
    if (json) {
        Answer a = {res.text,      res.finish,    res.prompt_tokens, res.completion_tokens,
                    now_ms() - t0, schema != NULL};
        char *body = json_analyze(&a);
        if (!body) {
            fprintf(stderr, "generate: out of memory\n");
            goto done;
        }
        printf("%s\n", body);
        free(body);
    } else {
        printf("\n");
    }
    rc = 0;
done:
    pipeline_result_free(&res);
    for (int i = 0; i < n_images; i++)
        free(files[i]);
    dicom_dir_free(dicom_files, dicom_sizes, n_dicom);
    free(dicom_images);
    free(schema);
    pipeline_close(pipeline);
    return rc;
}
