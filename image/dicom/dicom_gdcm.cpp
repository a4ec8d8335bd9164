/* The GDCM shim (dicom_gdcm.h): GDCM's ImageReader over an in-memory
 * stream, a handful of tags copied into a C struct, and the pixel decode.
 * C++ stays inside this file; every exception becomes an Error. */
#include "image/dicom/dicom_gdcm.h"
#include "image/dicom/dicom_guard.h"
#include <csetjmp>

#include <gdcmByteValue.h>
#include <gdcmDataSet.h>
#include <gdcmFileMetaInformation.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmPixelFormat.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>

#include <cctype>
#include <cxxabi.h>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <new>
#include <sstream>
#include <streambuf>

namespace {

/* A read-only, seekable stream over the caller's bytes (no copy). */
class MemoryBuffer : public std::streambuf {
  public:
    MemoryBuffer(const uint8_t *p, size_t n) {
        char *b = reinterpret_cast<char *>(const_cast<uint8_t *>(p));
        setg(b, b, b + n);
    }

  protected:
    pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) override {
        if (!(which & std::ios_base::in))
            return pos_type(off_type(-1));
        off_type base = dir == std::ios_base::beg   ? 0
                        : dir == std::ios_base::cur ? gptr() - eback()
                                                    : egptr() - eback();
        off_type to = base + off;
        if (to < 0 || to > egptr() - eback())
            return pos_type(off_type(-1));
        setg(eback(), eback() + to, egptr());
        return pos_type(to);
    }
    pos_type seekpos(pos_type pos, std::ios_base::openmode which) override {
        return seekoff(off_type(pos), std::ios_base::beg, which);
    }
};

/* GDCM's warnings can quote header values: they go nowhere. */
std::ostringstream &silent_sink() {
    static std::ostringstream sink;
    sink.setstate(std::ios_base::badbit); /* writes are dropped, nothing accumulates */
    return sink;
}

void silence_gdcm() {
    static bool done = false;
    if (done)
        return;
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetError(false);
    gdcm::Trace::SetStream(silent_sink());
    done = true;
}

/* The value of a tag as text without DICOM padding (spaces, NULs); false
 * when absent, empty or not a byte value. */
bool tag_text(const gdcm::DataSet &ds, uint16_t group, uint16_t element, std::string &out) {
    gdcm::Tag tag(group, element);
    if (!ds.FindDataElement(tag))
        return false;
    const gdcm::DataElement &de = ds.GetDataElement(tag);
    const gdcm::ByteValue *bv = de.GetByteValue();
    if (!bv || bv->GetLength() == 0 || bv->GetLength() > 4096)
        return false;
    out.assign(bv->GetPointer(), bv->GetLength());
    while (!out.empty() && (out.back() == ' ' || out.back() == '\0'))
        out.pop_back();
    size_t start = 0;
    while (start < out.size() && out[start] == ' ')
        start++;
    out.erase(0, start);
    return !out.empty();
}

/* Copies a short code string (CS/UI) into dst, upper-cased for CS. */
void copy_code(const std::string &s, char *dst, size_t cap, bool upper) {
    size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        dst[i] = upper ? static_cast<char>(std::toupper(c)) : static_cast<char>(c);
    }
    while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == 0))
        n--;
    dst[n] = 0;
}

/* Parses a backslash-separated list of DS/IS numbers (at most max). Returns
 * the count, or -1 when a value is not a finite number. */
int parse_numbers(const std::string &s, double *out, int max) {
    int n = 0;
    size_t i = 0;
    while (i <= s.size() && n < max) {
        size_t j = s.find('\\', i);
        if (j == std::string::npos)
            j = s.size();
        std::string item = s.substr(i, j - i);
        const char *p = item.c_str();
        while (*p == ' ')
            p++;
        char *end = nullptr;
        errno = 0;
        double v = std::strtod(p, &end);
        if (end == p || errno == ERANGE || !std::isfinite(v))
            return -1;
        while (*end == ' ')
            end++;
        if (*end)
            return -1;
        out[n++] = v;
        i = j + 1;
        if (j == s.size())
            break;
    }
    return n;
}

/* Optional numeric tag with exactly `count` values (or at least 1 when
 * count is 0: the number parsed is returned). Sets err and returns -1 when
 * present but malformed; 0 when absent. */
int numbers_tag(const gdcm::DataSet &ds, uint16_t g, uint16_t e, const char *name, int count, double *out,
                int max, int *found, Error *err) {
    *found = 0;
    std::string s;
    if (!tag_text(ds, g, e, s))
        return 0;
    int n = parse_numbers(s, out, max);
    if (n < 1 || (count > 0 && n != count))
        return error_set(err, "(%04X,%04X) %s is not %s", g, e, name,
                         count > 1 ? "a list of numbers of the right length" : "a number");
    *found = n;
    return 0;
}

/* An integer tag stored as US/SS (binary) or IS (text). */
int integer_tag(const gdcm::DataSet &ds, uint16_t g, uint16_t e, const char *name, int pixel_signed,
                long *out, int *found, Error *err) {
    *found = 0;
    gdcm::Tag tag(g, e);
    if (!ds.FindDataElement(tag))
        return 0;
    const gdcm::DataElement &de = ds.GetDataElement(tag);
    const gdcm::ByteValue *bv = de.GetByteValue();
    if (!bv || bv->GetLength() == 0)
        return 0;
    gdcm::VR vr = de.GetVR();
    if (vr == gdcm::VR::IS) {
        double v;
        int f;
        if (numbers_tag(ds, g, e, name, 1, &v, 1, &f, err) != 0)
            return -1;
        if (f && (v != std::floor(v) || std::fabs(v) > 2147483647.0))
            return error_set(err, "(%04X,%04X) %s is not an integer", g, e, name);
        *out = static_cast<long>(v);
        *found = f;
        return 0;
    }
    /* US, SS, or US/SS / UN from implicit VR: two little-endian bytes */
    if (bv->GetLength() < 2)
        return error_set(err, "(%04X,%04X) %s has a wrong length", g, e, name);
    const unsigned char *p = reinterpret_cast<const unsigned char *>(bv->GetPointer());
    unsigned v = p[0] | (static_cast<unsigned>(p[1]) << 8);
    *out = (vr == gdcm::VR::SS || pixel_signed) ? static_cast<long>(static_cast<int16_t>(v))
                                                : static_cast<long>(v);
    *found = 1;
    return 0;
}

} // namespace

/* RLE Lossless: GDCM's RLE decoder (3.0.21) reads out of bounds on some
 * corrupt segment headers, even while it only reads the file (it decodes to
 * compute the lossy flag). So an RLE file's fragments are checked against
 * DICOM PS3.5 Annex G before GDCM's image reader sees it: each frame's
 * fragment starts with a 64-byte header of SamplesPerPixel x BitsAllocated/8
 * segments whose offsets begin at 64, increase, and stay inside the fragment. */
static uint32_t le32(const char *p) {
    const unsigned char *u = reinterpret_cast<const unsigned char *>(p);
    return u[0] | (u[1] << 8) | (u[2] << 16) | (static_cast<uint32_t>(u[3]) << 24);
}

static int check_rle(const gdcm::DataSet &ds, Error *err) {
    long spp = 0, bits = 0;
    int found_spp = 0, found_bits = 0;
    if (integer_tag(ds, 0x0028, 0x0002, "SamplesPerPixel", 0, &spp, &found_spp, err) ||
        integer_tag(ds, 0x0028, 0x0100, "BitsAllocated", 0, &bits, &found_bits, err))
        return -1;
    if (!found_spp || !found_bits)
        return error_set(
            err, "(0028,0002) SamplesPerPixel and (0028,0100) BitsAllocated are required in an RLE file");
    long segments = spp * ((bits + 7) / 8);
    if (segments < 1 || segments > 15)
        return error_set(err, "(7FE0,0010) RLE needs %ld segments per frame (at most 15)", segments);
    if (!ds.FindDataElement(gdcm::Tag(0x7fe0, 0x0010)))
        return error_set(err, "(7FE0,0010) PixelData is missing");
    const gdcm::SequenceOfFragments *sf =
        ds.GetDataElement(gdcm::Tag(0x7fe0, 0x0010)).GetSequenceOfFragments();
    if (!sf || sf->GetNumberOfFragments() == 0)
        return error_set(err, "(7FE0,0010) RLE PixelData has no fragments");
    for (unsigned i = 0; i < sf->GetNumberOfFragments(); i++) {
        const gdcm::ByteValue *bv = sf->GetFragment(i).GetByteValue();
        uint32_t len = bv ? static_cast<uint32_t>(bv->GetLength()) : 0u;
        if (len < 64)
            return error_set(err, "(7FE0,0010) RLE fragment %u is shorter than its 64-byte header", i + 1);
        const char *p = bv->GetPointer();
        if (le32(p) != (uint32_t)segments)
            return error_set(err, "(7FE0,0010) RLE fragment %u has a wrong number of segments", i + 1);
        uint32_t prev = 0;
        for (long k = 0; k < segments; k++) {
            uint32_t off = le32(p + 4 + 4 * k);
            if ((k == 0 && off != 64) || (k > 0 && off <= prev) || off >= len)
                return error_set(err, "(7FE0,0010) RLE fragment %u has a segment offset outside the fragment",
                                 i + 1);
            prev = off;
        }
    }
    return 0;
}

/* The GDCM objects of one file; allocated inside the file's arena. */
struct Impl {
    MemoryBuffer buffer;
    std::istream stream;
    gdcm::ImageReader reader;
    size_t buffer_size;
    const uint8_t *file_bytes;
    Impl(const uint8_t *p, size_t n) : buffer(p, n), stream(&buffer), buffer_size(n), file_bytes(p) {}
};

/* The handle the C side holds (plain heap, outside the arena). */
struct DicomGdcm {
    DicomArena *arena;
    Impl *impl; /* NULL after an aborted call freed the arena */
};

/* After a jump out of GDCM: a failed assertion inside one of GDCM's catch
 * blocks skipped the end of that handler, so the exception it caught (allocated
 * by the C++ runtime, not in the arena) would never be freed. Ends those
 * handlers. The shims are only entered from C, never inside a handler, so every
 * exception still being handled here is GDCM's. */
static void end_abandoned_catches() {
    for (int i = 0; i < 64 && abi::__cxa_current_exception_type() != nullptr; i++)
        abi::__cxa_end_catch();
}

/* Runs f() inside a guard (dicom_guard.h): exceptions and failed GDCM
 * assertions become errors; after an assertion the arena (every GDCM object
 * of this file) and any exception GDCM was handling are freed. */
template <typename F> static int guarded(DicomGdcm *g, size_t cap, Error *err, F f) {
    sigjmp_buf jump;
    if (sigsetjmp(jump, 0)) {
        dicom_guard_leave();
        end_abandoned_catches();
        dicom_arena_free_all(g->arena);
        g->arena = nullptr;
        g->impl = nullptr;
        return error_set(err, "not a DICOM image GDCM can read (truncated or malformed: a consistency check "
                              "failed)");
    }
    dicom_guard_enter(g->arena, cap, &jump);
    int rc;
    try {
        rc = f();
    } catch (const std::bad_alloc &) {
        rc = error_set(err, "a data element declares more bytes than the limits allow (or out of memory)");
    } catch (...) {
        rc = error_set(err, "not a DICOM image GDCM can read (malformed data element)");
    }
    dicom_guard_leave();
    return rc;
}

static int fill_header(Impl *g, DicomHeader *h, Error *err) {
    std::memset(h, 0, sizeof *h);
    const gdcm::Image &img = g->reader.GetImage();
    const gdcm::DataSet &ds = g->reader.GetFile().GetDataSet();
    if (!ds.FindDataElement(gdcm::Tag(0x7fe0, 0x0010)))
        return error_set(err, "(7FE0,0010) PixelData is missing");
    const unsigned int *dims = img.GetDimensions();
    h->cols = static_cast<int>(dims[0] > 0x7fffffffu ? 0x7fffffffu : dims[0]);
    h->rows = static_cast<int>(dims[1] > 0x7fffffffu ? 0x7fffffffu : dims[1]);
    h->frames =
        img.GetNumberOfDimensions() > 2 ? static_cast<int>(dims[2] > 0x7fffffffu ? 0x7fffffffu : dims[2]) : 1;
    if (h->rows < 1)
        return error_set(err, "(0028,0010) Rows is missing or zero");
    if (h->cols < 1)
        return error_set(err, "(0028,0011) Columns is missing or zero");
    if (h->frames < 1)
        return error_set(err, "(0028,0008) NumberOfFrames is zero");
    const gdcm::PixelFormat &pf = img.GetPixelFormat();
    if (img.GetPhotometricInterpretation() == gdcm::PhotometricInterpretation::YBR_FULL_422 &&
        !img.GetTransferSyntax().IsEncapsulated())
        return error_set(err,
                         "(0028,0004) PhotometricInterpretation YBR_FULL_422 is supported in JPEG-compressed "
                         "files only (this one is uncompressed)");
    {
        const gdcm::DataElement &px = ds.GetDataElement(gdcm::Tag(0x7fe0, 0x0010));
        const gdcm::ByteValue *bv = px.GetByteValue();
        double need =
            (double)h->rows * h->cols * h->frames * pf.GetSamplesPerPixel() * (pf.GetBitsAllocated() / 8.0);
        bool deflated = img.GetTransferSyntax() == gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian;
        if (bv && !px.GetSequenceOfFragments() &&
            ((double)bv->GetLength() < need || (!deflated && (double)g->buffer_size < need)))
            return error_set(err, "(7FE0,0010) PixelData is shorter than Rows x Columns x frames needs (a "
                                  "truncated file?)");
        if (!bv && !px.GetSequenceOfFragments())
            return error_set(err, "(7FE0,0010) PixelData is empty");
        /* GDCM accepts native pixel data cut short by the end of the file (it
         * warns "Incomplete Pixel Data" and pads). When PixelData is the last
         * element, a complete value ends exactly where the file ends: compare
         * the value's last bytes with the file's. */
        bool little = img.GetTransferSyntax() == gdcm::TransferSyntax::ImplicitVRLittleEndian ||
                      img.GetTransferSyntax() == gdcm::TransferSyntax::ExplicitVRLittleEndian;
        if (bv && little && !px.GetSequenceOfFragments() && bv->GetLength() > 0 &&
            ds.GetDES().rbegin()->GetTag() == gdcm::Tag(0x7fe0, 0x0010)) {
            size_t len = bv->GetLength(), k = len < 64 ? len : 64;
            if (k > g->buffer_size ||
                std::memcmp(g->file_bytes + g->buffer_size - k, bv->GetPointer() + len - k, k) != 0)
                return error_set(err,
                                 "(7FE0,0010) PixelData is cut short by the end of the file (truncated)");
        }
    }
    h->samples_per_pixel = pf.GetSamplesPerPixel();
    h->bits_allocated = pf.GetBitsAllocated();
    h->bits_stored = pf.GetBitsStored();
    h->pixel_signed = pf.GetPixelRepresentation() ? 1 : 0;
    h->planar_configuration = static_cast<int>(img.GetPlanarConfiguration());
    const char *pi = gdcm::PhotometricInterpretation::GetPIString(img.GetPhotometricInterpretation());
    copy_code(pi ? pi : "", h->photometric, sizeof h->photometric, true);
    const char *ts = gdcm::TransferSyntax::GetTSString(img.GetTransferSyntax());
    copy_code(ts ? ts : "", h->transfer_syntax, sizeof h->transfer_syntax, false);

    std::string s;
    if (tag_text(ds, 0x0008, 0x0060, s))
        copy_code(s, h->modality, sizeof h->modality, true);
    if (tag_text(ds, 0x0008, 0x0016, s))
        copy_code(s, h->sop_class_uid, sizeof h->sop_class_uid, false);
    if (tag_text(ds, 0x0020, 0x000e, s))
        copy_code(s, h->series_uid, sizeof h->series_uid, false);
    if (tag_text(ds, 0x0028, 0x1056, s))
        copy_code(s, h->voi_function, sizeof h->voi_function, true);

    int found = 0, found2 = 0;
    if (numbers_tag(ds, 0x0028, 0x1053, "RescaleSlope", 1, &h->rescale_slope, 1, &found, err) ||
        numbers_tag(ds, 0x0028, 0x1052, "RescaleIntercept", 1, &h->rescale_intercept, 1, &found2, err))
        return -1;
    h->has_rescale = found && found2;
    if (!h->has_rescale) {
        h->rescale_slope = 1.0;
        h->rescale_intercept = 0.0;
    }
    int nc = 0, nw = 0;
    if (numbers_tag(ds, 0x0028, 0x1050, "WindowCenter", 0, h->window_center, DICOM_MAX_WINDOWS, &nc, err) ||
        numbers_tag(ds, 0x0028, 0x1051, "WindowWidth", 0, h->window_width, DICOM_MAX_WINDOWS, &nw, err))
        return -1;
    if ((nc > 0) != (nw > 0))
        return error_set(err, "(0028,1050) WindowCenter and (0028,1051) WindowWidth must come together");
    h->n_windows = nc < nw ? nc : nw;
    h->has_voi_lut_sequence = ds.FindDataElement(gdcm::Tag(0x0028, 0x3010));
    h->has_modality_lut_sequence = ds.FindDataElement(gdcm::Tag(0x0028, 0x3000));
    if (numbers_tag(ds, 0x0020, 0x0032, "ImagePositionPatient", 3, h->position, 3, &h->has_position, err) ||
        numbers_tag(ds, 0x0020, 0x0037, "ImageOrientationPatient", 6, h->orientation, 6, &h->has_orientation,
                    err))
        return -1;
    h->has_position = h->has_position ? 1 : 0;
    h->has_orientation = h->has_orientation ? 1 : 0;
    double inst = 0;
    if (numbers_tag(ds, 0x0020, 0x0013, "InstanceNumber", 1, &inst, 1, &h->has_instance_number, err))
        return -1;
    if (h->has_instance_number) {
        if (inst != std::floor(inst) || std::fabs(inst) > 2147483647.0)
            return error_set(err, "(0020,0013) InstanceNumber is not an integer");
        h->instance_number = static_cast<long>(inst);
    }
    if (integer_tag(ds, 0x0028, 0x0120, "PixelPaddingValue", h->pixel_signed, &h->padding_value,
                    &h->has_padding, err) ||
        integer_tag(ds, 0x0028, 0x0121, "PixelPaddingRangeLimit", h->pixel_signed, &h->padding_limit,
                    &h->has_padding_limit, err))
        return -1;
    return 0;
}

extern "C" int dicom_gdcm_open(const uint8_t *bytes, size_t n, DicomGdcm **out, DicomHeader *h, Error *err) {
    *out = nullptr;
    std::memset(h, 0, sizeof *h);
    silence_gdcm();
    if (!bytes || n == 0)
        return error_set(err, "the DICOM file is empty");
    DicomGdcm *g = static_cast<DicomGdcm *>(std::calloc(1, sizeof *g));
    if (!g || !(g->arena = dicom_arena_new())) {
        std::free(g);
        return error_set(err, "out of memory");
    }
    /* the largest single allocation parsing a file of n bytes may need (a
     * deflated dataset inflates: up to 64x, plus slack) */
    size_t cap = n > ((size_t)1 << 30) ? ((size_t)1 << 36) : 64 * n + ((size_t)16 << 20);
    int rc = guarded(g, cap, err, [&]() -> int {
        g->impl = new Impl(bytes, n);
        {
            /* RLE files: the fragments are checked before the image reader decodes any */
            gdcm::Reader pre;
            pre.SetStream(g->impl->stream);
            if (pre.ReadUpToTag(gdcm::Tag(0x0008, 0x0000)) &&
                pre.GetFile().GetHeader().GetDataSetTransferSyntax() == gdcm::TransferSyntax::RLELossless) {
                g->impl->stream.clear();
                g->impl->stream.seekg(0);
                gdcm::Reader full;
                full.SetStream(g->impl->stream);
                if (!full.Read())
                    return error_set(
                        err, "not a DICOM image GDCM can read (truncated, corrupt, or no pixel data)");
                if (check_rle(full.GetFile().GetDataSet(), err) != 0)
                    return -1;
            }
            g->impl->stream.clear();
            g->impl->stream.seekg(0);
        }
        g->impl->reader.SetStream(g->impl->stream);
        if (!g->impl->reader.Read())
            return error_set(err, "not a DICOM image GDCM can read (truncated, corrupt, or no pixel data)");
        return fill_header(g->impl, h, err);
    });
    if (rc != 0) {
        dicom_gdcm_close(g);
        std::memset(h, 0, sizeof *h);
        return -1;
    }
    *out = g;
    return 0;
}

extern "C" size_t dicom_gdcm_decoded_length(const DicomGdcm *g) {
    if (!g->impl)
        return 0;
    try {
        return g->impl->reader.GetImage().GetBufferLength();
    } catch (...) {
        return 0;
    }
}

extern "C" int dicom_gdcm_decode(DicomGdcm *g, uint8_t *buf, size_t len, Error *err) {
    if (!g->impl)
        return error_set(err, "the DICOM file was not opened");
    return guarded(g, 2 * len + ((size_t)16 << 20), err, [&]() -> int {
        const gdcm::Image &img = g->impl->reader.GetImage();
        if (img.GetBufferLength() != len)
            return error_set(err, "decoded pixel data has an unexpected size");
        if (!img.GetBuffer(reinterpret_cast<char *>(buf)))
            return error_set(err, "(7FE0,0010) PixelData could not be decoded (transfer syntax %s)",
                             gdcm::TransferSyntax::GetTSString(img.GetTransferSyntax()));
        return 0;
    });
}

extern "C" void dicom_gdcm_close(DicomGdcm *g) {
    if (!g)
        return;
    if (g->impl) {
        Error ignored;
        guarded(g, 0, &ignored, [&]() -> int {
            delete g->impl;
            return 0;
        });
        g->impl = nullptr;
    }
    /* Blocks still in the arena now were leaked by GDCM on an error path of a
     * malformed file (it does not free every partly read element): free them. */
    if (g->arena)
        dicom_arena_free_all(g->arena);
    std::free(g);
}
