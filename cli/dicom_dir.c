/* Reading a folder of DICOM files for `generate --dicom-dir` (dicom_dir.h). */
#include "cli/dicom_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/dicom/dicom.h"

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_all(const char *path, uint8_t **bytes, size_t *n, Error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return error_set(err, "cannot open '%s'", path);
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > DICOM_DEFAULT_MAX_FILE_BYTES) {
        fclose(f);
        return error_set(err, "'%s' is larger than the %zu-byte DICOM file limit", path,
                         DICOM_DEFAULT_MAX_FILE_BYTES);
    }
    *n = (size_t)st.st_size;
    *bytes = malloc(*n ? *n : 1);
    int ok = *bytes && fread(*bytes, 1, *n, f) == *n;
    fclose(f);
    if (!ok) {
        free(*bytes);
        *bytes = NULL;
        return error_set(err, "cannot read '%s'", path);
    }
    return 0;
}

void dicom_dir_free(uint8_t **files, size_t *sizes, int n) {
    for (int i = 0; files && i < n; i++)
        free(files[i]);
    free(files);
    free(sizes);
}

int dicom_dir_read(const char *dir, int max_files, uint8_t ***files, size_t **sizes, int *n, Error *err) {
    *files = NULL;
    *sizes = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return error_set(err, "cannot open the folder '%s'", dir);
    char **names = NULL;
    int n_names = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "DICOMDIR"))
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n_names == max_files) {
            rc = error_set(err, "'%s' holds more than %d files", dir, max_files);
            break;
        }
        if (n_names == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, sizeof *names * (size_t)cap);
            if (!grown) {
                rc = error_set(err, "out of memory");
                break;
            }
            names = grown;
        }
        names[n_names] = strdup(path);
        if (!names[n_names++])
            rc = error_set(err, "out of memory");
    }
    closedir(d);
    if (rc == 0 && n_names == 0)
        rc = error_set(err, "'%s' holds no files", dir);
    if (rc == 0) {
        qsort(names, (size_t)n_names, sizeof *names, cmp_names);
        *files = calloc((size_t)n_names, sizeof **files);
        *sizes = calloc((size_t)n_names, sizeof **sizes);
        if (!*files || !*sizes)
            rc = error_set(err, "out of memory");
    }
    for (int i = 0; rc == 0 && i < n_names; i++) {
        DicomHeader h;
        if (read_all(names[i], &(*files)[i], &(*sizes)[i], err) != 0)
            rc = -1;
        else if (dicom_read_header((*files)[i], (*sizes)[i], NULL, &h, err) != 0)
            rc = error_prefix(err, "'%s'", names[i]);
        memset(&h, 0, sizeof h);
    }
    for (int i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    if (rc != 0) {
        dicom_dir_free(*files, *sizes, n_names);
        *files = NULL;
        *sizes = NULL;
        return -1;
    }
    *n = n_names;
    return 0;
}
