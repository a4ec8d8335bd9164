/* No silent death from a model file that shrinks under the process (issue
 * 18): map_guard_check names the changed file, and a read past the new end
 * (SIGBUS) becomes one CRITICAL log line and exit status 75, for a mapping
 * made by checkpoint_open_file as the engine makes it. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/map_guard.h"
#include "engine/safetensors.h"
#include "tests/unit/test.h"

/* Writes a one-tensor safetensors file (f32 [n]) and returns its path. */
static const char *write_checkpoint(const char *name, int64_t n) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    TensorSpec spec = {"w", DTYPE_F32, 1, {n}};
    char *header = NULL;
    size_t header_len = 0, data_bytes = 0;
    Error err;
    if (safetensors_build_header(&spec, 1, &header, &header_len, &data_bytes, &err) != 0)
        return NULL;
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    uint64_t len = header_len;
    fwrite(&len, 8, 1, f);
    fwrite(header, 1, header_len, f);
    float one = 1.0f;
    for (int64_t i = 0; i < n; i++)
        fwrite(&one, 4, 1, f);
    fclose(f);
    free(header);
    return path;
}

TEST(map_guard_check_names_a_shrunk_file) {
    const char *path = write_checkpoint("shrink.safetensors", 1 << 16);
    CHECK(path != NULL);
    Checkpoint *ckpt = NULL;
    Error err;
    CHECK_EQ_INT(checkpoint_open_file(&ckpt, path, &err), 0);
    CHECK_EQ_INT(map_guard_check(&err), 0);
    CHECK_EQ_INT(truncate(path, 4096), 0);
    CHECK_EQ_INT(map_guard_check(&err), -1);
    CHECK_STR_CONTAINS(err.message, "shrink.safetensors");
    CHECK_STR_CONTAINS(err.message, "changed size");
    checkpoint_close(ckpt); /* unregistered: the check passes again */
    CHECK_EQ_INT(map_guard_check(&err), 0);
}

TEST(map_guard_sigbus_is_a_logged_exit) {
    const char *path = write_checkpoint("sigbus.safetensors", 1 << 16);
    CHECK(path != NULL);
    char log_path[1100];
    snprintf(log_path, sizeof log_path, "%s/sigbus.log", test_tmpdir());
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDOUT_FILENO);
        Checkpoint *ckpt = NULL;
        Error err;
        if (checkpoint_open_file(&ckpt, path, &err) != 0)
            _exit(3);
        const TensorInfo *t = checkpoint_find(ckpt, "w");
        if (!t || truncate(path, 4096) != 0)
            _exit(4);
        volatile const float *w = t->data;
        float sum = 0;
        for (int64_t i = 0; i < t->n_elements; i += 1024)
            sum += w[i]; /* past byte 4096 of the file: SIGBUS */
        _exit(sum > 0 ? 5 : 6);
    }
    int status = 0;
    CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
    CHECK_MSG(WIFEXITED(status), "the child died of signal %d without the handler", WTERMSIG(status));
    if (WIFEXITED(status))
        CHECK_EQ_INT(WEXITSTATUS(status), MAP_GUARD_EXIT_STATUS);
    char line[2048] = "";
    FILE *f = fopen(log_path, "r");
    CHECK(f != NULL);
    if (f) {
        size_t n = fread(line, 1, sizeof line - 1, f);
        line[n] = 0;
        fclose(f);
    }
    CHECK_STR_CONTAINS(line, "\"severity\":\"CRITICAL\"");
    CHECK_STR_CONTAINS(line, "SIGBUS");
    CHECK_STR_CONTAINS(line, "sigbus.safetensors");
    CHECK_STR_CONTAINS(line, "at offset");
}
