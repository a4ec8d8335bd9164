/* Guards around GDCM (image/dicom owns this). Debian builds GDCM with
 * assert() enabled, and GDCM sizes buffers from lengths declared in the file,
 * so a hostile file could end the process or make it allocate gigabytes.
 * While a thread is inside a guard (dicom_gdcm.cpp's calls into GDCM):
 *   - operator new: one allocation larger than the guard's cap (derived from
 *     the file size and the checked decoded size) throws std::bad_alloc
 *     before any memory is touched: a 200-byte file that declares a 4 GB
 *     element is refused at once;
 *   - every allocation is linked into the guard's arena, and a failed GDCM
 *     assertion (__assert_fail, which glibc declares noexcept, so it cannot
 *     throw) siglongjmps back to the shim, which frees the whole arena: no
 *     crash, no leak.
 *   - zlib (deflated datasets): inflate streams started inside a guard get
 *     allocators that use the arena too, so an abort mid-inflate leaks
 *     nothing either (inflateInit2_ is wrapped; the real one is found with
 *     dlsym(RTLD_NEXT)).
 *   - GDCM's bundled libjpeg (8/12/16-bit builds) gets its memory through
 *     jpeg_get_small/large: those are replaced (the libraries call them
 *     through the PLT) to use the arena as well, because GDCM's JPEG codec
 *     does not always destroy its decompressor on a corrupt stream.
 *   - tempnam and system: GDCM falls back to its PVRG JPEG codec when its
 *     own JPEG decoder gives up, and that codec writes the stream to a temp
 *     file and runs the external `pvrg-jpeg` program through system(). A
 *     service must not spawn programs on hostile input: inside a guard
 *     tempnam returns NULL and system fails, so that codec refuses.
 *   - OpenJPEG (JPEG 2000): GDCM does not destroy the decoded image on some
 *     error paths; images, codecs and streams made inside a guard are
 *     recorded (opj_read_header, opj_create_decompress, opj_stream_create are
 *     wrapped) and whatever is left when the outermost guard ends is
 *     destroyed there.
 * Blocks left in an arena when its file is closed are what GDCM leaked on an
 * error path; dicom_gdcm_close frees them.
 * Outside a guard every hook behaves like the standard one. This file must
 * not include <assert.h> (its __assert_fail declaration differs). */
#include "image/dicom/dicom_guard.h"

#include <dlfcn.h>
#include <zlib.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {

/* Header before every block from our operator new: 32 bytes keeps 16-byte
 * alignment. prev/next are NULL for blocks outside any arena. */
struct Block {
    Block *prev, *next;
    size_t size;
    size_t pad;
};

thread_local int guard_depth = 0;
thread_local size_t guard_cap = 0;
thread_local DicomArena *guard_arena = nullptr;
thread_local sigjmp_buf *guard_jump = nullptr;

} // namespace

struct DicomArena {
    Block head; /* circular list sentinel */
};

DicomArena *dicom_arena_new() {
    DicomArena *a = static_cast<DicomArena *>(std::malloc(sizeof(DicomArena)));
    if (a)
        a->head.prev = a->head.next = &a->head;
    return a;
}

void dicom_arena_release(DicomArena *a) {
    if (!a)
        return;
    for (Block *b = a->head.next; b != &a->head;) {
        Block *next = b->next;
        b->prev = b->next = nullptr;
        b = next;
    }
    std::free(a);
}

void dicom_arena_free_all(DicomArena *a) {
    if (!a)
        return;
    for (Block *b = a->head.next; b != &a->head;) {
        Block *next = b->next;
        std::free(b);
        b = next;
    }
    std::free(a);
}

void dicom_guard_enter(DicomArena *arena, size_t cap, sigjmp_buf *jump) {
    guard_depth++;
    guard_arena = arena;
    guard_cap = cap;
    guard_jump = jump;
}

static void opj_leftovers_destroy();

void dicom_guard_leave() {
    if (guard_depth == 1)
        opj_leftovers_destroy();
    if (--guard_depth <= 0) {
        guard_depth = 0;
        guard_arena = nullptr;
        guard_cap = 0;
        guard_jump = nullptr;
    }
}

extern "C" [[noreturn]] void __assert_fail(const char *assertion, const char *file, unsigned int line,
                                           const char *function) {
    if (guard_depth > 0 && guard_jump)
        siglongjmp(*guard_jump, 1);
    std::fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, function ? function : "?",
                 assertion);
    std::abort();
}

static void *allocate(size_t n) {
    if (guard_depth > 0 && guard_cap > 0 && n > guard_cap)
        throw std::bad_alloc();
    if (n > (size_t)-1 - sizeof(Block))
        throw std::bad_alloc();
    Block *b = static_cast<Block *>(std::malloc(sizeof(Block) + n));
    if (!b)
        throw std::bad_alloc();
    b->size = n;
    if (guard_depth > 0 && guard_arena) {
        Block *head = &guard_arena->head;
        b->prev = head;
        b->next = head->next;
        head->next->prev = b;
        head->next = b;
    } else {
        b->prev = b->next = nullptr;
    }
    return b + 1;
}

static void release(void *p) {
    if (!p)
        return;
    Block *b = static_cast<Block *>(p) - 1;
    if (b->prev) {
        b->prev->next = b->next;
        b->next->prev = b->prev;
    }
    std::free(b);
}

void *operator new(size_t n) {
    return allocate(n);
}
void *operator new[](size_t n) {
    return allocate(n);
}
void *operator new(size_t n, const std::nothrow_t &) noexcept {
    try {
        return allocate(n);
    } catch (...) {
        return nullptr;
    }
}
void *operator new[](size_t n, const std::nothrow_t &) noexcept {
    try {
        return allocate(n);
    } catch (...) {
        return nullptr;
    }
}
void operator delete(void *p) noexcept {
    release(p);
}
void operator delete[](void *p) noexcept {
    release(p);
}
void operator delete(void *p, size_t) noexcept {
    release(p);
}
void operator delete[](void *p, size_t) noexcept {
    release(p);
}
void operator delete(void *p, const std::nothrow_t &) noexcept {
    release(p);
}
void operator delete[](void *p, const std::nothrow_t &) noexcept {
    release(p);
}

/* zlib's allocator hooks for streams opened inside a guard. */
static voidpf arena_zalloc(voidpf, uInt items, uInt size) {
    try {
        return allocate((size_t)items * size);
    } catch (...) {
        return Z_NULL;
    }
}

static void arena_zfree(voidpf, voidpf p) {
    release(p);
}

extern "C" int inflateInit2_(z_streamp strm, int window_bits, const char *version, int stream_size) {
    using Fn = int (*)(z_streamp, int, const char *, int);
    static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "inflateInit2_"));
    if (!real)
        return Z_VERSION_ERROR;
    if (guard_depth > 0 && strm && strm->zalloc == Z_NULL && strm->zfree == Z_NULL) {
        strm->zalloc = arena_zalloc;
        strm->zfree = arena_zfree;
        strm->opaque = Z_NULL;
    }
    return real(strm, window_bits, version, stream_size);
}

/* libjpeg's jmemnobs.c, replaced for GDCM's three builds (must not throw
 * through C code: NULL makes libjpeg report "out of memory"). */
static void *nothrow_allocate(size_t n) {
    try {
        return allocate(n);
    } catch (...) {
        return nullptr;
    }
}

#define DICOM_JPEG_MEMORY_HOOKS(prefix)                                                                      \
    extern "C" void *prefix##_jpeg_get_small(void *, size_t n) {                                             \
        return nothrow_allocate(n);                                                                          \
    }                                                                                                        \
    extern "C" void *prefix##_jpeg_get_large(void *, size_t n) {                                             \
        return nothrow_allocate(n);                                                                          \
    }                                                                                                        \
    extern "C" void prefix##_jpeg_free_small(void *, void *p, size_t) {                                      \
        release(p);                                                                                          \
    }                                                                                                        \
    extern "C" void prefix##_jpeg_free_large(void *, void *p, size_t) {                                      \
        release(p);                                                                                          \
    }

DICOM_JPEG_MEMORY_HOOKS(gdcmjpeg8)
DICOM_JPEG_MEMORY_HOOKS(gdcmjpeg12)
DICOM_JPEG_MEMORY_HOOKS(gdcmjpeg16)

/* No temp files and no child processes from inside GDCM. */
extern "C" char *tempnam(const char *dir, const char *prefix) {
    if (guard_depth > 0) {
        errno = EPERM;
        return nullptr;
    }
    using Fn = char *(*)(const char *, const char *);
    static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "tempnam"));
    return real ? real(dir, prefix) : nullptr;
}

extern "C" int system(const char *command) {
    if (guard_depth > 0) {
        errno = EPERM;
        return -1;
    }
    using Fn = int (*)(const char *);
    static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "system"));
    return real ? real(command) : -1;
}

/* ---- OpenJPEG objects made inside a guard (see the top of the file) */
namespace {
enum { OPJ_IMAGE, OPJ_CODEC, OPJ_STREAM };
struct OpjObject {
    int kind;
    void *p;
};
constexpr int OPJ_MAX = 16;
thread_local OpjObject opj_objects[OPJ_MAX];
thread_local int opj_count = 0;

void opj_record(int kind, void *p) {
    if (guard_depth > 0 && p && opj_count < OPJ_MAX)
        opj_objects[opj_count++] = {kind, p};
}

void opj_forget(void *p) {
    for (int i = 0; i < opj_count; i++)
        if (opj_objects[i].p == p) {
            opj_objects[i] = opj_objects[--opj_count];
            return;
        }
}

template <typename Fn> Fn real_fn(const char *name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}
using DestroyFn = void (*)(void *);
} // namespace

extern "C" int opj_read_header(void *stream, void *codec, void **image) {
    static auto real = real_fn<int (*)(void *, void *, void **)>("opj_read_header");
    int ok = real ? real(stream, codec, image) : 0;
    if (image)
        opj_record(OPJ_IMAGE, *image);
    return ok;
}

extern "C" void opj_image_destroy(void *image) {
    static auto real = real_fn<DestroyFn>("opj_image_destroy");
    opj_forget(image);
    if (real)
        real(image);
}

extern "C" void *opj_create_decompress(int format) {
    static auto real = real_fn<void *(*)(int)>("opj_create_decompress");
    void *c = real ? real(format) : nullptr;
    opj_record(OPJ_CODEC, c);
    return c;
}

extern "C" void opj_destroy_codec(void *codec) {
    static auto real = real_fn<DestroyFn>("opj_destroy_codec");
    opj_forget(codec);
    if (real)
        real(codec);
}

extern "C" void *opj_stream_create(size_t buffer_size, int is_input) {
    static auto real = real_fn<void *(*)(size_t, int)>("opj_stream_create");
    void *st = real ? real(buffer_size, is_input) : nullptr;
    opj_record(OPJ_STREAM, st);
    return st;
}

extern "C" void opj_stream_destroy(void *stream) {
    static auto real = real_fn<DestroyFn>("opj_stream_destroy");
    opj_forget(stream);
    if (real)
        real(stream);
}

/* OpenJPEG's messages (codestream errors) would go to stderr through GDCM's
 * handlers: nothing from a file is printed, the shim's error says what failed. */
static void opj_quiet(const char *, void *) {}
using OpjHandler = void (*)(const char *, void *);
#define DICOM_OPJ_QUIET(name)                                                                                \
    extern "C" int name(void *codec, OpjHandler, void *data) {                                               \
        static auto real = real_fn<int (*)(void *, OpjHandler, void *)>(#name);                              \
        return real ? real(codec, opj_quiet, data) : 0;                                                      \
    }
DICOM_OPJ_QUIET(opj_set_error_handler)
DICOM_OPJ_QUIET(opj_set_warning_handler)
DICOM_OPJ_QUIET(opj_set_info_handler)

static void opj_leftovers_destroy() {
    static const char *names[] = {"opj_image_destroy", "opj_destroy_codec", "opj_stream_destroy"};
    for (int kind = OPJ_IMAGE; kind <= OPJ_STREAM; kind++) {
        DestroyFn destroy = real_fn<DestroyFn>(names[kind]);
        for (int i = 0; i < opj_count;) {
            if (opj_objects[i].kind == kind) {
                void *p = opj_objects[i].p;
                opj_objects[i] = opj_objects[--opj_count];
                if (destroy)
                    destroy(p);
            } else {
                i++;
            }
        }
    }
}

/* libjpeg's default output_message prints warnings and errors to stderr;
 * GDCM's three builds keep it. jpeg_std_error is wrapped to make it silent
 * (the struct starts with error_exit, emit_message, output_message). */
namespace {
struct JpegErrorHead {
    void (*error_exit)(void *);
    void (*emit_message)(void *, int);
    void (*output_message)(void *);
};
void jpeg_quiet(void *) {}
} // namespace

#define DICOM_JPEG_QUIET(prefix)                                                                             \
    extern "C" void *prefix##_jpeg_std_error(void *err) {                                                    \
        static auto real = real_fn<void *(*)(void *)>(#prefix "_jpeg_std_error");                            \
        void *e = real ? real(err) : err;                                                                    \
        if (e)                                                                                               \
            static_cast<JpegErrorHead *>(e)->output_message = jpeg_quiet;                                    \
        return e;                                                                                            \
    }
DICOM_JPEG_QUIET(gdcmjpeg8)
DICOM_JPEG_QUIET(gdcmjpeg12)
DICOM_JPEG_QUIET(gdcmjpeg16)
