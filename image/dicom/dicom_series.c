/* Several DICOM files -> images (dicom.h): the kind, the order along the
 * slice normal, sampling to the most slices (the CT notebook's choice),
 * mixed series refused; decoding and windowing spread over threads. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/dicom/dicom.h"

typedef struct {
    int file, frame;
    double key; /* position along the normal */
    long instance;
} Slot;

static int slot_cmp_position(const void *a, const void *b) {
    const Slot *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->instance != y->instance)
        return x->instance < y->instance ? -1 : 1;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

static int slot_cmp_instance(const void *a, const void *b) {
    const Slot *x = a, *y = b;
    if (x->instance != y->instance)
        return x->instance < y->instance ? -1 : 1;
    if (x->file != y->file)
        return x->file < y->file ? -1 : 1;
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

static int thread_count(const DicomOptions *opt, int work) {
    long n = opt && opt->threads > 0 ? opt->threads : 0;
    if (n == 0) {
        const char *env = getenv("MEDGEMMA_IMAGE_THREADS");
        n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (n < 1)
        n = 1;
    if (n > 8)
        n = 8;
    return n > work ? (work > 0 ? work : 1) : (int)n;
}

/* Volumes: one series, one orientation, one size. */
static int check_same_volume(const DicomHeader *h, int n_files, Error *err) {
    for (int i = 1; i < n_files; i++) {
        const DicomHeader *a = &h[0], *b = &h[i];
        if (strcmp(a->series_uid, b->series_uid) != 0)
            return error_set(err,
                             "dicom[%d]: (0020,000E) SeriesInstanceUID differs from dicom[0]'s: the files "
                             "are from different series",
                             i);
        if (a->rows != b->rows || a->cols != b->cols)
            return error_set(err,
                             "dicom[%d]: (0028,0010)/(0028,0011) size %dx%d differs from dicom[0]'s %dx%d", i,
                             b->cols, b->rows, a->cols, a->rows);
        if (a->has_orientation != b->has_orientation)
            return error_set(err, "dicom[%d]: (0020,0037) ImageOrientationPatient is %s but %s in dicom[0]",
                             i, b->has_orientation ? "present" : "missing",
                             a->has_orientation ? "present" : "missing");
        for (int k = 0; a->has_orientation && k < 6; k++)
            if (fabs(a->orientation[k] - b->orientation[k]) > 1e-4)
                return error_set(err,
                                 "dicom[%d]: (0020,0037) ImageOrientationPatient differs from dicom[0]'s: "
                                 "slices of different orientations",
                                 i);
    }
    return 0;
}

/* Orders a volume's slots; returns how. */
static DicomOrder sort_volume(const DicomHeader *h, int n_files, Slot *slots, int n_slots) {
    if (n_files == 1)
        return DICOM_ORDER_AS_SENT; /* one (multi-frame) file: frames in file order */
    int all_pos = 1, all_inst = 1;
    for (int i = 0; i < n_files; i++) {
        all_pos &= h[i].has_position && h[i].has_orientation;
        all_inst &= h[i].has_instance_number;
    }
    if (all_pos) {
        const double *o = h[0].orientation;
        double nrm[3] = {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
        for (int s = 0; s < n_slots; s++) {
            const double *p = h[slots[s].file].position;
            slots[s].key = p[0] * nrm[0] + p[1] * nrm[1] + p[2] * nrm[2];
        }
        qsort(slots, (size_t)n_slots, sizeof *slots, slot_cmp_position);
        return DICOM_ORDER_POSITION;
    }
    if (all_inst) {
        qsort(slots, (size_t)n_slots, sizeof *slots, slot_cmp_instance);
        return DICOM_ORDER_INSTANCE;
    }
    return DICOM_ORDER_AS_SENT;
}

/* Shared state of the worker threads. */
typedef struct {
    const uint8_t *const *files;
    const size_t *sizes;
    const DicomLimits *limits;
    const DicomOptions *opt;
    const PreprocessOptions *po;
    DicomKind kind;
    /* phase 1: decode */
    const int *decode_list;
    int n_decode;
    DicomImage *imgs;
    Error *file_err; /* per file */
    int *file_failed;
    /* phase 2: convert */
    const Slot *chosen;
    int n_chosen;
    float vmin, vmax; /* MR range */
    DecodedImage *rgb;
    float *tensors;
    size_t per_tensor;
    Error *slot_err;
    int *slot_failed;
    atomic_int next;
    int phase;
} Work;

static void convert_one(Work *w, int j) {
    const Slot *s = &w->chosen[j];
    const DicomImage *img = &w->imgs[s->file];
    DecodedImage rgb;
    Error *err = &w->slot_err[j];
    int rc;
    switch (w->kind) {
    case DICOM_KIND_CT:
        rc = dicom_ct_frame_rgb8(img, s->frame, w->opt ? w->opt->windows : NULL, &rgb, err);
        break;
    case DICOM_KIND_MR: {
        DecodedImage gray;
        RescaleParams r;
        rc = dicom_frame_gray16(img, s->frame, &gray, &r, err);
        if (rc == 0) {
            rc = mri_slice_to_rgb8(&gray, &r, w->vmin, w->vmax, &rgb, err);
            decoded_image_free(&gray);
        }
        break;
    }
    case DICOM_KIND_GRAY:
        rc = dicom_gray_frame_rgb8(img, s->frame, w->opt ? w->opt->voi_index : 0, &rgb, err);
        break;
    default:
        rc = dicom_color_frame_rgb8(img, s->frame, &rgb, err);
        break;
    }
    if (rc == 0 && w->tensors) {
        rc = image_rgb8_to_tensor(&rgb, w->po, w->tensors + (size_t)j * w->per_tensor, err);
        decoded_image_free(&rgb);
    } else if (rc == 0) {
        w->rgb[j] = rgb;
    }
    w->slot_failed[j] = rc != 0;
}

static void *worker(void *arg) {
    Work *w = arg;
    for (;;) {
        int i = atomic_fetch_add(&w->next, 1);
        if (w->phase == 1) {
            if (i >= w->n_decode)
                break;
            int f = w->decode_list[i];
            w->file_failed[f] =
                dicom_read(w->files[f], w->sizes[f], w->limits, &w->imgs[f], &w->file_err[f]) != 0;
        } else {
            if (i >= w->n_chosen)
                break;
            convert_one(w, i);
        }
    }
    return NULL;
}

static void run_parallel(Work *w, int phase, int n_items) {
    w->phase = phase;
    atomic_store(&w->next, 0);
    int nt = thread_count(w->opt, n_items);
    pthread_t tids[8];
    int started[8] = {0};
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&tids[t], NULL, worker, w) == 0;
    worker(w);
    for (int t = 1; t < nt; t++)
        if (started[t])
            pthread_join(tids[t], NULL);
}

void dicom_result_free(DicomResult *r) {
    if (!r)
        return;
    for (int i = 0; r->rgb && i < r->n; i++)
        decoded_image_free(&r->rgb[i]);
    free(r->rgb);
    free(r->file);
    free(r->frame);
    memset(r, 0, sizeof *r);
}

static int run(const uint8_t *const *files, const size_t *sizes, int n_files, const DicomLimits *limits,
               const DicomOptions *opt, const PreprocessOptions *po, float **tensors, DicomResult *out,
               Error *err) {
    memset(out, 0, sizeof *out);
    if (tensors)
        *tensors = NULL;
    if (n_files < 1 || !files || !sizes)
        return error_set(err, "no DICOM files");
    size_t max_req =
        limits && limits->max_request_bytes ? limits->max_request_bytes : DICOM_DEFAULT_MAX_REQUEST_BYTES;
    size_t total = 0;
    for (int i = 0; i < n_files; i++)
        total += sizes[i];
    if (total > max_req)
        return error_set(err, "the DICOM files are %zu bytes in all, over the limit of %zu", total, max_req);

    const char *modality = opt ? opt->modality : NULL;
    DicomHeader *h = calloc((size_t)n_files, sizeof *h);
    Slot *slots = NULL, *chosen = NULL;
    int *idx = NULL, *decode_list = NULL, *file_failed = NULL, *slot_failed = NULL;
    DicomImage *imgs = NULL;
    Error *file_err = NULL, *slot_err = NULL;
    DecodedImage *gray = NULL;
    int rc = h ? 0 : error_set(err, "out of memory");
    for (int i = 0; rc == 0 && i < n_files; i++)
        if (dicom_read_header(files[i], sizes[i], limits, &h[i], err) != 0)
            rc = error_prefix(err, "dicom[%d]", i);
    DicomKind kind = 0;
    for (int i = 0; rc == 0 && i < n_files; i++) {
        DicomKind k;
        if (dicom_kind(&h[i], modality, &k, err) != 0)
            rc = error_prefix(err, "dicom[%d]", i);
        else if (i == 0)
            kind = k;
        else if (k != kind)
            rc = error_set(err,
                           "dicom[%d]: (0008,0060) Modality or (0028,0002) SamplesPerPixel differs from "
                           "dicom[0]'s: send one kind of image per request",
                           i);
    }
    int volume = kind == DICOM_KIND_CT || kind == DICOM_KIND_MR;
    if (rc == 0 && volume)
        rc = check_same_volume(h, n_files, err);
    int n_slots = 0;
    for (int i = 0; rc == 0 && i < n_files; i++)
        n_slots += h[i].frames; /* each <= max_frames, n_files <= request limit: no overflow in practice */
    if (rc == 0 && (slots = calloc((size_t)n_slots, sizeof *slots)) == NULL)
        rc = error_set(err, "out of memory");
    for (int i = 0, s = 0; rc == 0 && i < n_files; i++)
        for (int f = 0; f < h[i].frames; f++, s++)
            slots[s] = (Slot){i, f, 0.0, h[i].instance_number};
    DicomOrder order = DICOM_ORDER_AS_SENT;
    int n_chosen = 0;
    if (rc == 0 && volume) {
        order = sort_volume(h, n_files, slots, n_slots);
        int m = opt && opt->max_slices > 0 ? opt->max_slices : CT_MAX_SLICES;
        idx = malloc(sizeof *idx * (size_t)(m < n_slots ? m : n_slots));
        chosen = idx ? malloc(sizeof *chosen * (size_t)(m < n_slots ? m : n_slots)) : NULL;
        if (!chosen)
            rc = error_set(err, "out of memory");
        else
            n_chosen = sample_slices_evenly(n_slots, m, idx);
        for (int j = 0; rc == 0 && j < n_chosen; j++)
            chosen[j] = slots[idx[j]];
    } else if (rc == 0) {
        if (opt && opt->max_images > 0 && n_slots > opt->max_images)
            rc = error_set(err, "the DICOM files hold %d frames in all, over the limit of %d images", n_slots,
                           opt->max_images);
        chosen = slots;
        slots = NULL;
        n_chosen = n_slots;
    }
    /* decode the files that hold a chosen frame */
    imgs = rc ? NULL : calloc((size_t)n_files, sizeof *imgs);
    file_err = rc ? NULL : calloc((size_t)n_files, sizeof *file_err);
    file_failed = rc ? NULL : calloc((size_t)n_files, sizeof *file_failed);
    decode_list = rc ? NULL : calloc((size_t)n_files, sizeof *decode_list);
    slot_err = rc ? NULL : calloc((size_t)n_chosen, sizeof *slot_err);
    slot_failed = rc ? NULL : calloc((size_t)n_chosen, sizeof *slot_failed);
    if (rc == 0 && (!imgs || !file_err || !file_failed || !decode_list || !slot_err || !slot_failed))
        rc = error_set(err, "out of memory");
    Work w = {0};
    if (rc == 0) {
        int *needed = file_failed; /* reused as a flag array before decoding */
        for (int j = 0; j < n_chosen; j++)
            needed[chosen[j].file] = 1;
        int n_decode = 0;
        for (int i = 0; i < n_files; i++)
            if (needed[i])
                decode_list[n_decode++] = i;
        memset(file_failed, 0, sizeof *file_failed * (size_t)n_files);
        w = (Work){.files = files,
                   .sizes = sizes,
                   .limits = limits,
                   .opt = opt,
                   .po = po,
                   .kind = kind,
                   .decode_list = decode_list,
                   .n_decode = n_decode,
                   .imgs = imgs,
                   .file_err = file_err,
                   .file_failed = file_failed,
                   .chosen = chosen,
                   .n_chosen = n_chosen,
                   .slot_err = slot_err,
                   .slot_failed = slot_failed};
        run_parallel(&w, 1, n_decode);
        for (int i = 0; i < n_files && rc == 0; i++)
            if (file_failed[i]) {
                *err = file_err[i];
                rc = error_prefix(err, "dicom[%d]", i);
            }
    }
    /* MR: one range over all chosen slices */
    if (rc == 0 && kind == DICOM_KIND_MR) {
        gray = calloc((size_t)n_chosen, sizeof *gray);
        rc = gray ? 0 : error_set(err, "out of memory");
        /* each slice through its own file's rescale */
        double lo = INFINITY, hi = -INFINITY;
        for (int j = 0; rc == 0 && j < n_chosen; j++) {
            float a = 0, b = 0;
            RescaleParams r;
            if (dicom_frame_gray16(&imgs[chosen[j].file], chosen[j].frame, &gray[j], &r, err) != 0 ||
                mri_volume_range(&gray[j], 1, &r, &a, &b, err) != 0)
                rc = error_prefix(err, "dicom[%d]", chosen[j].file);
            lo = a < lo ? a : lo;
            hi = b > hi ? b : hi;
            decoded_image_free(&gray[j]);
        }
        w.vmin = (float)lo;
        w.vmax = (float)hi;
    }
    if (rc == 0) {
        if (tensors) {
            size_t s = po && po->size > 0 ? (size_t)po->size : IMAGE_MODEL_SIZE;
            w.per_tensor = 3 * s * s;
            w.tensors = malloc(sizeof(float) * w.per_tensor * (size_t)(n_chosen ? n_chosen : 1));
            if (!w.tensors)
                rc = error_set(err, "out of memory for %d image tensors", n_chosen);
        } else {
            w.rgb = calloc((size_t)(n_chosen ? n_chosen : 1), sizeof *w.rgb);
            if (!w.rgb)
                rc = error_set(err, "out of memory");
        }
    }
    if (rc == 0) {
        run_parallel(&w, 2, n_chosen);
        for (int j = 0; j < n_chosen && rc == 0; j++)
            if (slot_failed[j]) {
                *err = slot_err[j];
                rc = error_prefix(err, "dicom[%d]", chosen[j].file);
            }
    }
    out->n = n_chosen;
    out->rgb = w.rgb;
    out->file = malloc(sizeof(int) * (size_t)(n_chosen ? n_chosen : 1));
    out->frame = malloc(sizeof(int) * (size_t)(n_chosen ? n_chosen : 1));
    if (rc == 0 && (!out->file || !out->frame))
        rc = error_set(err, "out of memory");
    for (int j = 0; rc == 0 && j < n_chosen; j++) {
        out->file[j] = chosen[j].file;
        out->frame[j] = chosen[j].frame;
    }
    out->kind = kind;
    out->volume = volume;
    out->order = order;
    out->n_total_slices = n_slots;
    if (rc == 0 && tensors)
        *tensors = w.tensors;
    else
        free(w.tensors);
    for (int j = 0; gray && j < n_chosen; j++)
        decoded_image_free(&gray[j]);
    free(gray);
    for (int i = 0; imgs && i < n_files; i++)
        dicom_image_free(&imgs[i]);
    free(imgs);
    free(file_err);
    free(file_failed);
    free(decode_list);
    free(slot_err);
    free(slot_failed);
    free(idx);
    free(chosen);
    free(slots);
    if (h)
        memset(h, 0, sizeof *h * (size_t)n_files); /* header values do not outlive the call */
    free(h);
    if (rc != 0)
        dicom_result_free(out);
    return rc;
}

int dicom_files_to_rgb8(const uint8_t *const *files, const size_t *sizes, int n_files,
                        const DicomLimits *limits, const DicomOptions *opt, DicomResult *out, Error *err) {
    return run(files, sizes, n_files, limits, opt, NULL, NULL, out, err);
}

int dicom_files_to_tensors(const uint8_t *const *files, const size_t *sizes, int n_files,
                           const DicomLimits *limits, const DicomOptions *opt, const PreprocessOptions *po,
                           float **tensors, DicomResult *out, Error *err) {
    return run(files, sizes, n_files, limits, opt, po, tensors, out, err);
}

int dicom_file_to_tensor(const uint8_t *bytes, size_t n, const PreprocessOptions *po, float *out_chw,
                         Error *err) {
    DicomHeader h;
    if (dicom_read_header(bytes, n, NULL, &h, err) != 0)
        return -1;
    int frames = h.frames;
    memset(&h, 0, sizeof h);
    if (frames != 1)
        return error_set(err,
                         "the DICOM file holds %d frames: send multi-frame files and series in /analyze's "
                         "\"dicom\" field (or `generate --dicom-dir`)",
                         frames);
    DicomOptions opt = {0};
    opt.max_images = 1;
    opt.threads = 1;
    DicomResult r;
    float *t = NULL;
    if (dicom_files_to_tensors(&bytes, &n, 1, NULL, &opt, po, &t, &r, err) != 0) {
        /* one file: drop the "dicom[0]: " prefix, the caller names the image */
        const char *p = strncmp(err->message, "dicom[0]: ", 10) == 0 ? err->message + 10 : NULL;
        if (p)
            memmove(err->message, p, strlen(p) + 1);
        return -1;
    }
    size_t s = po && po->size > 0 ? (size_t)po->size : IMAGE_MODEL_SIZE;
    memcpy(out_chw, t, sizeof(float) * 3 * s * s);
    free(t);
    dicom_result_free(&r);
    return 0;
}
