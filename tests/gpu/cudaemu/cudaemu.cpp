/* cudaemu's engine (see cudaemu.h): fibers, the schedules, the rendezvous
 * points and their checks, the warp collectives and mma.sync, the launch
 * limits.
 *
 * A block's threads are fibers on one host thread. The scheduler switches to
 * a runnable fiber, which runs until it waits (barrier, warp collective) or
 * ends; then the scheduler picks the next one by the schedule. A barrier opens
 * when every thread still running waits at it (threads that returned do not
 * take part, as on sm_70+); a warp collective completes when every lane of its
 * mask waits at it. When no fiber can run and the block is not done, that is a
 * deadlock: reported with each thread's wait site, then abort().
 *
 * Context switch: on x86-64 a few instructions (callee-saved registers, MXCSR
 * and the x87 control word; the kernels need nothing else); elsewhere
 * ucontext's swapcontext, which also saves the signal mask (a system call per
 * switch, about 10x slower). */
#include "cudaemu.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cxxabi.h>
#include <dlfcn.h>

#include <map>
#include <set>
#include <string>
#include <tuple>

#if defined(__x86_64__) && !defined(CUDAEMU_UCONTEXT)
#define CUDAEMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CUDAEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUDAEMU_ASAN 1
#endif
#endif
#ifdef CUDAEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

/* The static __shared__ variables of every kernel (cudaemu.h's __shared__). */
extern "C" char __start_cudaemu_shared[] __attribute__((weak));
extern "C" char __stop_cudaemu_shared[] __attribute__((weak));

#ifdef CUDAEMU_ASM_SWITCH
/* cudaemu_switch(&save_sp, new_sp): saves the callee-saved state on the current
 * stack, stores its stack pointer in *save_sp, continues from new_sp. */
extern "C" void cudaemu_switch(void **save_sp, void *new_sp);
__asm__(".text\n"
        ".globl cudaemu_switch\n"
        ".type cudaemu_switch,@function\n"
        "cudaemu_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size cudaemu_switch, .-cudaemu_switch\n");
#endif

namespace cudaemu {
namespace {

enum State { RUNNABLE, AT_BARRIER, AT_WARP, DONE };
enum Schedule { FORWARD, REVERSE, RANDOM, WARP_GREEDY_ASC, WARP_GREEDY_DESC };
const char *const schedule_names[] = {"forward", "reverse", "random", "warp-greedy-asc", "warp-greedy-desc"};

struct Fiber {
#ifdef CUDAEMU_ASM_SWITCH
    void *sp;
#else
    ucontext_t ctx;
#endif
    char *stack;
    State state;
    unsigned linear;
    uint3 tid;
    const char *file; /* where it waits */
    int line;
    /* the warp collective it waits at */
    WarpOp op;
    unsigned mask;
    int arg, width;
    uint64_t in, out;
    float *mma_c;
    uint32_t mma_a[4], mma_b[2];
#ifdef CUDAEMU_ASAN
    void *fake_stack;
#endif
};

const int MAX_THREADS = 1024;

struct Engine {
    int ready;
    Schedule schedule;
    uint64_t rng;
    int sm90;
    size_t stack_size;
    /* fibers and their stacks (grown to the largest block seen) */
    Fiber *fibers;
    char *stacks;
    int capacity;
    /* the block being run */
    const LaunchConfig *cfg;
    const void *launch;
    unsigned char *dyn_smem;
    int n_threads, n_done, n_barrier, n_warp_waiting;
    uint64_t runnable[MAX_THREADS / 64];
    uint32_t warp_waiting[MAX_THREADS / 32], warp_done[MAX_THREADS / 32];
    int last; /* the fiber that ran last (the round-robin position) */
    Fiber *cur;
#ifdef CUDAEMU_ASM_SWITCH
    void *sched_sp;
#else
    ucontext_t sched_ctx;
#endif
#ifdef CUDAEMU_ASAN
    void *sched_fake_stack;
    const void *sched_stack_bottom;
    size_t sched_stack_size;
#endif
    std::map<const void *, int> max_dyn_smem;                              /* cudaFuncSetAttribute opt-ins */
    std::set<std::tuple<const void *, unsigned long long, size_t>> logged; /* CUDAEMU_LAUNCH_LOG */
    long long blocks_run, switches;
};

thread_local Engine E;

/* The kernel's name with its template arguments ("flash_prefill_kernel<256>"),
 * from the dynamic symbol table (-rdynamic); else the name at the launch site. */
std::string kernel_name(const LaunchConfig *c) {
    Dl_info info;
    if (!c || !dladdr(c->func, &info) || !info.dli_sname)
        return c ? c->name : "?";
    int status = 0;
    char *d = abi::__cxa_demangle(info.dli_sname, NULL, NULL, &status);
    std::string name = status == 0 && d ? d : info.dli_sname;
    free(d);
    size_t paren = name.find('(');
    if (paren != std::string::npos)
        name.resize(paren);
    if (name.compare(0, 5, "void ") == 0)
        name.erase(0, 5);
    return name;
}

#ifndef CUDAEMU_ASAN
/* A kernel's invalid access outside ASan (which has its own report): name the
 * kernel, block and thread on stdout as a FAIL line, then die of the signal. */
void on_fault(int sig) {
    char msg[512];
    const LaunchConfig *c = E.cfg;
    int n =
        snprintf(msg, sizeof msg, "FAIL cudaemu: %s in kernel %s, block (%u,%u,%u), thread %d\n",
                 sig == SIGSEGV ? "segmentation fault (an invalid address)" : "bus error",
                 kernel_name(c).c_str(), blockIdx.x, blockIdx.y, blockIdx.z, E.cur ? (int)E.cur->linear : -1);
    if (c && n > 0 && write(1, msg, (size_t)n) < 0)
        n = 0;
    signal(sig, SIG_DFL); /* returning re-executes the access: the default action ends the process */
}

#endif

void install_fault_handler() {
#ifndef CUDAEMU_ASAN
    static char alt_stack[64 << 10]; /* a fiber's own stack may be what overflowed */
    stack_t ss = {};
    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    sigaltstack(&ss, NULL);
    struct sigaction sa = {};
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
#endif
}

void init() {
    if (E.ready)
        return;
    E.ready = 1;
    install_fault_handler();
    const char *s = getenv("CUDAEMU_SCHEDULE");
    E.schedule = FORWARD;
    if (s && *s) {
        std::string v = s;
        if (v == "forward")
            E.schedule = FORWARD;
        else if (v == "reverse")
            E.schedule = REVERSE;
        else if (v == "random")
            E.schedule = RANDOM;
        else if (v == "warp-greedy" || v == "warp-greedy-asc")
            E.schedule = WARP_GREEDY_ASC;
        else if (v == "warp-greedy-desc")
            E.schedule = WARP_GREEDY_DESC;
        else {
            fprintf(stderr,
                    "cudaemu: CUDAEMU_SCHEDULE=%s is not one of forward, reverse, random, warp-greedy-asc, "
                    "warp-greedy-desc\n",
                    s);
            exit(2);
        }
    }
    s = getenv("CUDAEMU_SEED");
    E.rng = (s && *s ? strtoull(s, NULL, 10) : 1) * 0x9E3779B97F4A7C15ull + 1;
    s = getenv("CUDAEMU_ARCH");
    E.sm90 = s && !strcmp(s, "sm_90");
    if (s && *s && strcmp(s, "sm_89") && strcmp(s, "sm_90")) {
        fprintf(stderr, "cudaemu: CUDAEMU_ARCH=%s is not sm_89 or sm_90\n", s);
        exit(2);
    }
    s = getenv("CUDAEMU_STACK_KB");
#ifdef CUDAEMU_ASAN
    size_t kb = 256;
#else
    size_t kb = 64;
#endif
    if (s && *s)
        kb = strtoull(s, NULL, 10);
    E.stack_size = kb << 10;
}

/* Prints the failure (stdout as a FAIL line the test runners count, and
 * stderr), then aborts: a broken kernel has no result worth continuing for. */
[[noreturn]] void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void die(const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const LaunchConfig *c = E.cfg;
    char where[256] = "";
    if (c)
        snprintf(where, sizeof where,
                 " in kernel %s, block (%u,%u,%u) of grid (%u,%u,%u), block size (%u,%u,%u)",
                 kernel_name(c).c_str(), blockIdx.x, blockIdx.y, blockIdx.z, c->grid.x, c->grid.y, c->grid.z,
                 c->block.x, c->block.y, c->block.z);
    printf("FAIL cudaemu: %s%s [schedule %s]\n", msg, where, schedule_names[E.schedule]);
    fflush(stdout);
    fprintf(stderr, "cudaemu: %s%s [schedule %s]\n", msg, where, schedule_names[E.schedule]);
    abort();
}

const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

const char *op_name(WarpOp op) {
    switch (op) {
    case OP_SHFL_XOR:
        return "__shfl_xor_sync";
    case OP_SHFL_DOWN:
        return "__shfl_down_sync";
    case OP_SHFL_UP:
        return "__shfl_up_sync";
    case OP_SHFL_IDX:
        return "__shfl_sync";
    case OP_SYNCWARP:
        return "__syncwarp";
    case OP_MMA:
        return "mma.sync.m16n8k16";
    }
    return "?";
}

/* "threads 0-31 at __syncthreads (attention.cu:120); thread 40 exited; ..." */
void describe_threads(char *out, size_t n) {
    size_t len = 0;
    out[0] = 0;
    int i = 0;
    while (i < E.n_threads && len + 200 < n) {
        const Fiber &f = E.fibers[i];
        int j = i + 1;
        while (j < E.n_threads) {
            const Fiber &g = E.fibers[j];
            if (g.state != f.state || g.file != f.file || g.line != f.line ||
                (f.state == AT_WARP && (g.op != f.op || g.mask != f.mask)))
                break;
            j++;
        }
        char range[32];
        if (j - i == 1)
            snprintf(range, sizeof range, "thread %d", i);
        else
            snprintf(range, sizeof range, "threads %d-%d", i, j - 1);
        switch (f.state) {
        case RUNNABLE:
            len += snprintf(out + len, n - len, "%s runnable; ", range);
            break;
        case DONE:
            len += snprintf(out + len, n - len, "%s exited; ", range);
            break;
        case AT_BARRIER:
            len += snprintf(out + len, n - len, "%s at __syncthreads (%s:%d); ", range, base_name(f.file),
                            f.line);
            break;
        case AT_WARP:
            len += snprintf(out + len, n - len, "%s at %s mask %08x (%s:%d); ", range, op_name(f.op), f.mask,
                            base_name(f.file), f.line);
            break;
        }
        i = j;
    }
    if (i < E.n_threads)
        snprintf(out + len, n - len, "...");
}

/* ---- runnable set: a bitset, so every schedule picks in O(threads / 64) */

void set_runnable(int i) {
    E.fibers[i].state = RUNNABLE;
    E.runnable[i >> 6] |= 1ull << (i & 63);
}
void clear_runnable(int i) {
    E.runnable[i >> 6] &= ~(1ull << (i & 63));
}

int words() {
    return (E.n_threads + 63) >> 6;
}
int lowest_from(int from) { /* lowest runnable >= from, or -1 */
    for (int w = from >> 6; w < words(); w++) {
        uint64_t m = E.runnable[w];
        if (w == from >> 6)
            m &= ~0ull << (from & 63);
        if (m)
            return (w << 6) + __builtin_ctzll(m);
    }
    return -1;
}
int highest_to(int to) { /* highest runnable <= to, or -1 */
    if (to < 0)
        return -1;
    for (int w = to >> 6; w >= 0; w--) {
        uint64_t m = E.runnable[w];
        if (w == to >> 6 && (to & 63) != 63)
            m &= (1ull << ((to & 63) + 1)) - 1;
        if (m)
            return (w << 6) + 63 - __builtin_clzll(m);
    }
    return -1;
}
uint64_t next_random() {
    E.rng ^= E.rng << 13;
    E.rng ^= E.rng >> 7;
    E.rng ^= E.rng << 17;
    return E.rng;
}

int pick() {
    int n = E.n_threads;
    switch (E.schedule) {
    case FORWARD: { /* round robin, ascending */
        int i = lowest_from(E.last + 1 < n ? E.last + 1 : 0);
        return i >= 0 ? i : lowest_from(0);
    }
    case REVERSE: { /* round robin, descending */
        int i = highest_to(E.last - 1);
        return i >= 0 ? i : highest_to(n - 1);
    }
    case WARP_GREEDY_ASC: /* the lowest thread that can run: warp 0 as far as it gets first */
        return lowest_from(0);
    case WARP_GREEDY_DESC:
        return highest_to(n - 1);
    case RANDOM: {
        int count = 0;
        for (int w = 0; w < words(); w++)
            count += __builtin_popcountll(E.runnable[w]);
        if (!count)
            return -1;
        int k = (int)(next_random() % (uint64_t)count);
        for (int w = 0; w < words(); w++) {
            int c = __builtin_popcountll(E.runnable[w]);
            if (k < c) {
                uint64_t m = E.runnable[w];
                while (k--)
                    m &= m - 1;
                return (w << 6) + __builtin_ctzll(m);
            }
            k -= c;
        }
        return -1;
    }
    }
    return -1;
}

/* ---- switching */

#ifdef CUDAEMU_ASAN
void asan_enter_fiber(Fiber *f) {
    __sanitizer_start_switch_fiber(&E.sched_fake_stack, f->stack, E.stack_size);
}
void asan_back_in_scheduler() {
    __sanitizer_finish_switch_fiber(E.sched_fake_stack, NULL, NULL);
}
void asan_leave_fiber(Fiber *f, bool exiting) {
    __sanitizer_start_switch_fiber(exiting ? NULL : &f->fake_stack, E.sched_stack_bottom, E.sched_stack_size);
}
void asan_back_in_fiber(Fiber *f) {
    __sanitizer_finish_switch_fiber(f->fake_stack, &E.sched_stack_bottom, &E.sched_stack_size);
}
#else
void asan_enter_fiber(Fiber *) {}
void asan_back_in_scheduler() {}
void asan_leave_fiber(Fiber *, bool) {}
void asan_back_in_fiber(Fiber *) {}
#endif

/* From a fiber to the scheduler; returns when the scheduler runs it again. */
void yield_to_scheduler(bool exiting) {
    Fiber *f = E.cur;
    asan_leave_fiber(f, exiting);
#ifdef CUDAEMU_ASM_SWITCH
    cudaemu_switch(&f->sp, E.sched_sp);
#else
    swapcontext(&f->ctx, &E.sched_ctx);
#endif
    asan_back_in_fiber(f);
}

void on_thread_exit(Fiber *f);

/* Every fiber starts here and never returns (it switches back for good). */
#ifdef CUDAEMU_ASM_SWITCH
extern "C" __attribute__((no_sanitize("address"))) void cudaemu_fiber_entry(void)
#else
__attribute__((no_sanitize("address"))) void fiber_entry(void)
#endif
{
    Fiber *f = E.cur;
    asan_back_in_fiber(f);
    E.cfg->thread_main(E.launch);
    on_thread_exit(f);
    yield_to_scheduler(true);
    abort(); /* not reached */
}

void start_fiber(Fiber *f) {
    char *top = f->stack + E.stack_size;
#ifdef CUDAEMU_ASAN
    __asan_unpoison_memory_region(top - 8192, 8192);
#endif
#ifdef CUDAEMU_ASM_SWITCH
    /* cudaemu_switch's frame: MXCSR + x87 control word, r15..rbp, then its ret
     * address (the entry), then the entry's own (never used) return address. */
    uint64_t *sp = (uint64_t *)((uintptr_t)top & ~(uintptr_t)15);
    *--sp = 0;                                         /* the entry's return address */
    *--sp = (uint64_t)(uintptr_t)&cudaemu_fiber_entry; /* cudaemu_switch returns here */
    for (int i = 0; i < 6; i++)
        *--sp = 0;                         /* rbp, rbx, r12..r15 */
    *--sp = 0x1F80ull | (0x037Full << 32); /* MXCSR default, x87 control word default */
    f->sp = sp;
#else
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = E.stack_size;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, fiber_entry, 0);
#endif
}

void run_fiber(Fiber *f) {
    E.cur = f;
    E.last = (int)f->linear;
    threadIdx = f->tid;
    E.switches++;
    asan_enter_fiber(f);
#ifdef CUDAEMU_ASM_SWITCH
    cudaemu_switch(&E.sched_sp, f->sp);
#else
    swapcontext(&E.sched_ctx, &f->ctx);
#endif
    asan_back_in_scheduler();
    E.cur = NULL;
}

void ensure_fibers(int n) {
    if (n <= E.capacity)
        return;
    long page = sysconf(_SC_PAGESIZE);
    if (E.stacks)
        munmap(E.stacks, (size_t)E.capacity * (E.stack_size + page));
    free(E.fibers);
    /* one guard page below each stack: an overflow faults instead of corrupting the next fiber */
    size_t each = E.stack_size + page, total = (size_t)n * each;
    E.stacks =
        (char *)mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (E.stacks == MAP_FAILED)
        die("cannot map %d fiber stacks of %zu KB: %s", n, E.stack_size >> 10, strerror(errno));
    E.fibers = (Fiber *)calloc(n, sizeof(Fiber));
    for (int i = 0; i < n; i++) {
        mprotect(E.stacks + (size_t)i * each, page, PROT_NONE);
        E.fibers[i].stack = E.stacks + (size_t)i * each + page;
    }
    E.capacity = n;
}

/* ---- barriers and warp collectives */

void on_thread_exit(Fiber *f) {
    f->state = DONE;
    clear_runnable((int)f->linear);
    E.n_done++;
    int w = f->linear >> 5;
    uint32_t bit = 1u << (f->linear & 31);
    E.warp_done[w] |= bit;
    /* a lane of this warp waiting for this one at a collective now waits forever */
    for (uint32_t m = E.warp_waiting[w]; m; m &= m - 1) {
        const Fiber &g = E.fibers[(w << 5) + __builtin_ctz(m)];
        if (g.mask & bit) {
            char who[2048];
            describe_threads(who, sizeof who);
            die("thread %u exited while lane %u waits for it at %s mask %08x (%s:%d): a warp collective "
                "with a lane missing; %s",
                f->linear, g.linear & 31, op_name(g.op), g.mask, base_name(g.file), g.line, who);
        }
    }
}

/* All threads still running wait at a barrier: open it (they must wait at the same one). */
void open_barrier() {
    const Fiber *first = NULL;
    for (int i = 0; i < E.n_threads; i++) {
        Fiber &f = E.fibers[i];
        if (f.state != AT_BARRIER)
            continue;
        if (!first)
            first = &f;
        else if (f.file != first->file || f.line != first->line) {
            char who[2048];
            describe_threads(who, sizeof who);
            die("divergent __syncthreads: threads wait at different barriers; %s", who);
        }
    }
    for (int i = 0; i < E.n_threads; i++)
        if (E.fibers[i].state == AT_BARRIER)
            set_runnable(i);
    E.n_barrier = 0;
}

/* Rebuilds the warp's 16x16 A, 16x8 B and 16x8 C from the lanes' fragments
 * (the layout in kernels/cuda/common.cuh), D = A B + C, and hands each lane
 * its D fragment. Products of bf16 are exact in fp32; each output sums its 16
 * products and C in double and rounds once to fp32 (tensor cores accumulate in
 * at least fp32: tests/gpu/run.sh measures the difference on a GPU). */
void mma_complete(int w) {
    float A[16][16], B[16][8], C[16][8];
    auto lo = [](uint32_t r) { return __uint_as_float(r << 16); };
    auto hi = [](uint32_t r) { return __uint_as_float(r & 0xffff0000u); };
    for (int lane = 0; lane < 32; lane++) {
        const Fiber &f = E.fibers[(w << 5) + lane];
        int g = lane >> 2, t = lane & 3;
        A[g][2 * t] = lo(f.mma_a[0]), A[g][2 * t + 1] = hi(f.mma_a[0]);
        A[g + 8][2 * t] = lo(f.mma_a[1]), A[g + 8][2 * t + 1] = hi(f.mma_a[1]);
        A[g][2 * t + 8] = lo(f.mma_a[2]), A[g][2 * t + 9] = hi(f.mma_a[2]);
        A[g + 8][2 * t + 8] = lo(f.mma_a[3]), A[g + 8][2 * t + 9] = hi(f.mma_a[3]);
        B[2 * t][g] = lo(f.mma_b[0]), B[2 * t + 1][g] = hi(f.mma_b[0]);
        B[2 * t + 8][g] = lo(f.mma_b[1]), B[2 * t + 9][g] = hi(f.mma_b[1]);
        C[g][2 * t] = f.mma_c[0], C[g][2 * t + 1] = f.mma_c[1];
        C[g + 8][2 * t] = f.mma_c[2], C[g + 8][2 * t + 1] = f.mma_c[3];
    }
    float D[16][8];
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            double s = C[m][n];
            for (int k = 0; k < 16; k++)
                s += (double)A[m][k] * (double)B[k][n];
            D[m][n] = (float)s;
        }
    for (int lane = 0; lane < 32; lane++) {
        Fiber &f = E.fibers[(w << 5) + lane];
        int g = lane >> 2, t = lane & 3;
        f.mma_c[0] = D[g][2 * t], f.mma_c[1] = D[g][2 * t + 1];
        f.mma_c[2] = D[g + 8][2 * t], f.mma_c[3] = D[g + 8][2 * t + 1];
    }
}

void warp_complete(int w, const Fiber &arrived) {
    unsigned mask = arrived.mask;
    /* every lane of the mask must be at the same collective with the same mask */
    for (uint32_t m = mask; m; m &= m - 1) {
        const Fiber &g = E.fibers[(w << 5) + __builtin_ctz(m)];
        if (g.op != arrived.op || g.mask != mask || g.file != arrived.file || g.line != arrived.line) {
            char who[2048];
            describe_threads(who, sizeof who);
            die("divergent warp collective: lane %u at %s mask %08x (%s:%d), lane %u at %s mask %08x "
                "(%s:%d); %s",
                g.linear & 31, op_name(g.op), g.mask, base_name(g.file), g.line, arrived.linear & 31,
                op_name(arrived.op), mask, base_name(arrived.file), arrived.line, who);
        }
    }
    if (arrived.op == OP_MMA) {
        mma_complete(w);
    } else if (arrived.op != OP_SYNCWARP) {
        for (uint32_t m = mask; m; m &= m - 1) {
            int lane = __builtin_ctz(m);
            Fiber &f = E.fibers[(w << 5) + lane];
            int width = f.width, seg = lane & ~(width - 1), src = lane;
            switch (f.op) {
            case OP_SHFL_XOR:
                src = lane ^ f.arg;
                if ((src & ~(width - 1)) != seg)
                    src = lane;
                break;
            case OP_SHFL_DOWN:
                src = (lane - seg) + f.arg < width ? lane + f.arg : lane;
                break;
            case OP_SHFL_UP:
                src = (lane - seg) >= f.arg ? lane - f.arg : lane;
                break;
            case OP_SHFL_IDX:
                src = seg + (f.arg & (width - 1));
                break;
            default:
                break;
            }
            if (!(mask & (1u << src)))
                die("%s (%s:%d): lane %d reads lane %d, which is not in the mask %08x", op_name(f.op),
                    base_name(f.file), f.line, lane, src, mask);
            f.out = E.fibers[(w << 5) + src].in;
        }
    }
    for (uint32_t m = mask; m; m &= m - 1)
        set_runnable((w << 5) + __builtin_ctz(m));
    E.warp_waiting[w] &= ~mask;
    E.n_warp_waiting -= __builtin_popcount(mask);
}

Fiber *current(const char *what, const char *file, int line) {
    if (!E.cur) {
        fprintf(stderr, "cudaemu: %s called outside a kernel (%s:%d)\n", what, base_name(file), line);
        abort();
    }
    return E.cur;
}

} // namespace

void syncthreads(const char *file, int line) {
    Fiber *f = current("__syncthreads", file, line);
    f->state = AT_BARRIER;
    f->file = file, f->line = line;
    clear_runnable((int)f->linear);
    E.n_barrier++;
    yield_to_scheduler(false);
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width, const char *file,
                         int line) {
    Fiber *f = current(op_name(op), file, line);
    int w = f->linear >> 5, lane = f->linear & 31;
    if (!(mask & (1u << lane)))
        die("%s (%s:%d): lane %d calls it with mask %08x, which does not name it", op_name(op),
            base_name(file), line, lane, mask);
    if (width <= 0 || width > 32 || (width & (width - 1)))
        die("%s (%s:%d): width %d is not a power of two <= 32", op_name(op), base_name(file), line, width);
    int warp_lanes = E.n_threads - (w << 5) < 32 ? E.n_threads - (w << 5) : 32;
    uint32_t exists = warp_lanes == 32 ? 0xffffffffu : (1u << warp_lanes) - 1;
    if (mask & ~exists)
        die("%s (%s:%d): mask %08x names lanes that do not exist (the block's last warp has %d)", op_name(op),
            base_name(file), line, mask, warp_lanes);
    if (mask & E.warp_done[w]) {
        char who[2048];
        describe_threads(who, sizeof who);
        die("%s mask %08x (%s:%d) by lane %d: lanes %08x of the mask have exited; %s", op_name(op), mask,
            base_name(file), line, lane, mask & E.warp_done[w], who);
    }
    f->state = AT_WARP;
    f->op = op, f->mask = mask, f->arg = arg, f->width = width, f->in = value;
    f->file = file, f->line = line;
    clear_runnable((int)f->linear);
    E.warp_waiting[w] |= 1u << lane;
    E.n_warp_waiting++;
    if ((E.warp_waiting[w] & mask) == mask)
        warp_complete(w, *f);
    yield_to_scheduler(false);
    return f->out;
}

void mma_m16n8k16_bf16(float c[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                       uint32_t b1) {
    Fiber *f = current("mma.sync", __FILE__, __LINE__);
    f->mma_c = c;
    f->mma_a[0] = a0, f->mma_a[1] = a1, f->mma_a[2] = a2, f->mma_a[3] = a3;
    f->mma_b[0] = b0, f->mma_b[1] = b1;
    /* .aligned: the whole warp executes the same mma */
    warp_collective(OP_MMA, 0xffffffffu, 0, 0, 32, __builtin_FILE(), __builtin_LINE());
}

void *dynamic_smem(void) {
    return E.dyn_smem;
}

/* ---- launches */

namespace {
struct ArchLimits {
    const char *name;
    size_t smem_default, smem_optin;
};
ArchLimits limits() {
    /* CUDA C Programming Guide, "Technical Specifications per Compute Capability":
     * 48 KB per block without the opt-in; with it 99 KB on 8.9, 227 KB on 9.0. */
    return E.sm90 ? ArchLimits{"sm_90", 48 << 10, 227 << 10} : ArchLimits{"sm_89", 48 << 10, 99 << 10};
}
} // namespace

cudaError_t func_set_attribute(const void *func, cudaFuncAttribute attr, int value) {
    init();
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        (size_t)value > limits().smem_optin) {
        fprintf(stderr,
                "cudaemu: cudaFuncSetAttribute(MaxDynamicSharedMemorySize, %d) exceeds %s's %zu bytes\n",
                value, limits().name, limits().smem_optin);
        return cudaErrorInvalidValue;
    }
    E.max_dyn_smem[func] = value;
    return cudaSuccess;
}

void log_launch(const LaunchConfig &c);

cudaError_t check_launch(const LaunchConfig &c) {
    init();
    const ArchLimits L = limits();
    char why[256] = "";
    cudaError_t e = cudaSuccess;
    unsigned long long threads = (unsigned long long)c.block.x * c.block.y * c.block.z;
    if (!c.block.x || !c.block.y || !c.block.z || !c.grid.x || !c.grid.y || !c.grid.z) {
        snprintf(why, sizeof why, "a grid or block dimension is 0");
        e = cudaErrorInvalidConfiguration;
    } else if (threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64) {
        snprintf(why, sizeof why, "block (%u,%u,%u) exceeds 1024 threads (x, y <= 1024, z <= 64)", c.block.x,
                 c.block.y, c.block.z);
        e = cudaErrorInvalidConfiguration;
    } else if (c.grid.x > 0x7fffffffu || c.grid.y > 65535 || c.grid.z > 65535) {
        snprintf(why, sizeof why, "grid (%u,%u,%u) exceeds x < 2^31, y and z <= 65535", c.grid.x, c.grid.y,
                 c.grid.z);
        e = cudaErrorInvalidConfiguration;
    } else if (c.smem > L.smem_default) {
        auto it = E.max_dyn_smem.find(c.func);
        size_t allowed = it == E.max_dyn_smem.end() ? L.smem_default : (size_t)it->second;
        if (c.smem > allowed) {
            snprintf(why, sizeof why,
                     "%zu bytes of dynamic shared memory: more than %zu without "
                     "cudaFuncSetAttribute(MaxDynamicSharedMemorySize) (%s allows up to %zu with it)",
                     c.smem, allowed, L.name, L.smem_optin);
            e = cudaErrorInvalidValue;
        }
    }
    if (e != cudaSuccess) {
        std::string name = kernel_name(&c);
        printf("# cudaemu: launch of %s rejected on %s: %s\n", name.c_str(), L.name, why);
        fflush(stdout);
        fprintf(stderr, "cudaemu: launch of %s rejected on %s: %s\n", name.c_str(), L.name, why);
    } else {
        log_launch(c);
    }
    return e;
}

/* CUDAEMU_LAUNCH_LOG=FILE: each distinct (kernel, threads per block, dynamic
 * shared memory) launched is appended to FILE as "<mangled name> <threads>
 * <bytes>", the sizes tests/gpu/ptxas_check.py checks the kernels' registers
 * and shared memory at. The name comes from the dynamic symbol table (the
 * programs link with -rdynamic); it is the mangled name nvcc gives the kernel. */
void log_launch(const LaunchConfig &c) {
    static const char *path = getenv("CUDAEMU_LAUNCH_LOG");
    if (!path || !*path)
        return;
    unsigned long long threads = (unsigned long long)c.block.x * c.block.y * c.block.z;
    if (!E.logged.insert(std::make_tuple(c.func, threads, c.smem)).second)
        return;
    Dl_info info;
    const char *sym = dladdr(c.func, &info) && info.dli_sname ? info.dli_sname : NULL;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "%s %llu %zu %s\n", sym ? sym : "?", threads, c.smem, c.name);
    fclose(f);
}

void reject_launch(cudaError_t e) {
    fake_launch_rejected(e);
}

void run_grid(const LaunchConfig *cfg, const void *launch) {
    init();
    int n = (int)(cfg->block.x * cfg->block.y * cfg->block.z);
    ensure_fibers(n);
    E.cfg = cfg;
    E.launch = launch;
    E.n_threads = n;
    gridDim = cfg->grid;
    blockDim = cfg->block;
    size_t shared_bytes = (size_t)(__stop_cudaemu_shared - __start_cudaemu_shared);
    E.dyn_smem = cfg->smem ? (unsigned char *)malloc(cfg->smem) : NULL; /* exact size: ASan sees overruns */
    unsigned long long n_blocks = (unsigned long long)cfg->grid.x * cfg->grid.y * cfg->grid.z;
    bool backwards = E.schedule == REVERSE || E.schedule == WARP_GREEDY_DESC;
    for (unsigned long long b = 0; b < n_blocks; b++) {
        unsigned long long bb = backwards ? n_blocks - 1 - b : b;
        blockIdx.x = (unsigned)(bb % cfg->grid.x);
        blockIdx.y = (unsigned)(bb / cfg->grid.x % cfg->grid.y);
        blockIdx.z = (unsigned)(bb / cfg->grid.x / cfg->grid.y);
        if (shared_bytes)
            memset(__start_cudaemu_shared, 0xff, shared_bytes); /* NaN in fp32, bf16 and fp64 */
        if (E.dyn_smem)
            memset(E.dyn_smem, 0xff, cfg->smem);
        E.n_done = E.n_barrier = E.n_warp_waiting = 0;
        memset(E.runnable, 0, sizeof E.runnable);
        memset(E.warp_waiting, 0, sizeof E.warp_waiting);
        memset(E.warp_done, 0, sizeof E.warp_done);
        for (int i = 0; i < n; i++) {
            Fiber &f = E.fibers[i];
            f.linear = (unsigned)i;
            f.tid.x = (unsigned)i % cfg->block.x;
            f.tid.y = (unsigned)i / cfg->block.x % cfg->block.y;
            f.tid.z = (unsigned)i / cfg->block.x / cfg->block.y;
            f.file = NULL, f.line = 0;
            start_fiber(&f);
            set_runnable(i);
        }
        E.last = E.schedule == REVERSE ? n : -1;
        while (E.n_done < n) {
            int i = pick();
            if (i >= 0) {
                run_fiber(&E.fibers[i]);
                continue;
            }
            if (E.n_barrier > 0 && E.n_barrier + E.n_done == n) {
                open_barrier();
                continue;
            }
            char who[2048];
            describe_threads(who, sizeof who);
            die("deadlock: no thread can run; %s", who);
        }
        E.blocks_run++;
    }
    free(E.dyn_smem);
    E.dyn_smem = NULL;
    E.cfg = NULL;
}

} // namespace cudaemu
