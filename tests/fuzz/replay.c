/* replay.c: runs files through the parser's fuzz target without libFuzzer.
 *
 *   fuzz_replay PATH...
 *
 * Each PATH is a file or a directory of files (tests/fuzz/corpus/): each file is
 * handed to LLVMFuzzerTestOneInput as libFuzzer would, so the corpus of interesting
 * and once-crashing inputs is a regression test under gcc and under the ASan build.
 * A broken rule aborts inside the target; a file that cannot be read fails the run. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *data = malloc(cap);
    size_t n;
    while (data != NULL && (n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(data, cap *= 2);
            if (bigger == NULL)
                free(data);
            data = bigger;
        }
    }
    int failed = ferror(f) || data == NULL;
    fclose(f);
    if (!failed)
        LLVMFuzzerTestOneInput(data, len);
    free(data);
    if (failed)
        fprintf(stderr, "fuzz_replay: cannot read %s\n", path);
    return failed ? -1 : 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    int files = 0, failures = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "fuzz_replay: %s: %s\n", argv[i], strerror(errno));
            failures++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failures += replay_file(argv[i]) < 0;
            files++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, by_name);
        if (n < 0) {
            fprintf(stderr, "fuzz_replay: %s: %s\n", argv[i], strerror(errno));
            failures++;
            continue;
        }
        for (int j = 0; j < n; j++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
            if (names[j]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                failures += replay_file(path) < 0;
                files++;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("fuzz_replay: %d inputs, %d unreadable\n", files, failures);
    return failures > 0 || files == 0 ? 1 : 0;
}
