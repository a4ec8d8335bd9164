/* C++-only guards around GDCM calls (dicom_guard.cpp explains them). */
#ifndef IMAGE_DICOM_DICOM_GUARD_H
#define IMAGE_DICOM_DICOM_GUARD_H

#include <csetjmp>
#include <cstddef>

/* Every allocation GDCM makes while a guard of this arena is active. */
struct DicomArena;

DicomArena *dicom_arena_new();
/* Normal end: the arena's remaining blocks become ordinary heap blocks. */
void dicom_arena_release(DicomArena *a);
/* After an abort: frees every block still allocated in the arena. */
void dicom_arena_free_all(DicomArena *a);

/* Inside [enter, leave) on this thread: allocations are tracked in `arena`,
 * one allocation over `cap` bytes (0: no cap) throws std::bad_alloc, and a
 * failed GDCM assert() jumps to `jump` (sigsetjmp'd by the caller). */
void dicom_guard_enter(DicomArena *arena, size_t cap, sigjmp_buf *jump);
void dicom_guard_leave();

#endif
