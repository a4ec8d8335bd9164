/* The DICOM shim's guard around GDCM (image/dicom/dicom_gdcm.cpp): what a
 * refused file leaves behind on the thread that parsed it. */
#include <stdint.h>
#include <stdlib.h>

#include "image/dicom/dicom.h"
#include "tests/unit/test.h"
#include "util/error.h"

/* The C++ runtime's "exception being handled on this thread" (Itanium C++ ABI,
 * extern "C" in libstdc++): NULL outside every catch block. */
const void *__cxa_current_exception_type(void);

/* A truncated file makes GDCM throw, catch, and then fail an assertion inside
 * its catch block; the guard jumps out of that handler. It must end the
 * handler, or the caught exception stays "being handled" on this thread (a
 * later bare `throw;` would rethrow it) and is leaked when a worker thread
 * exits (LeakSanitizer found it in make test-asan: 192 bytes per such file). */
TEST(dicom_truncated_file_leaves_no_exception_being_handled) {
    const char *root = getenv("REPO_ROOT") ? getenv("REPO_ROOT") : ".";
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus_dicom/ct_explicit", root);
    FILE *f = fopen(path, "rb");
    if (!f) {
        test_fail(__FILE__, __LINE__, "cannot open %s", path);
        return;
    }
    uint8_t file[2048];
    size_t n = fread(file, 1, sizeof file, f);
    fclose(f);
    CHECK(n > 402);
    /* the fuzz seed's first two bytes pick the harness path; the file follows */
    size_t cuts[] = {300, 400, 500};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        DicomHeader h;
        Error err = {{0}};
        int rc = dicom_read_header(file + 2, cuts[i], NULL, &h, &err);
        CHECK_MSG(rc != 0, "a file cut at %zu bytes was accepted", cuts[i]);
        CHECK_MSG(strstr(err.message, "GDCM") != NULL, "cut at %zu: unexpected error '%s'", cuts[i], err.message);
        CHECK_MSG(__cxa_current_exception_type() == NULL,
                  "cut at %zu bytes ('%s'): GDCM's caught exception is still being handled after the guard", cuts[i],
                  err.message);
    }
}
