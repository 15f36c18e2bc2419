/* venv.c: which virtualenv the embedded interpreter uses (see venv.h).
 *
 * Everything here runs before Python starts, so the two places --virtualenv can come
 * from are read by hand: the command line with argparse's rules for long options
 * (exact name, "--name=value", or an unambiguous prefix), and GUNICORN_CMD_ARGS split
 * the way shlex.split splits it. The full parser reads both again later; this scan
 * only has to agree with it on --virtualenv. */
#include "python/venv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <Python.h>

#include "log/log.h"

/* The --virtualenv text found before start-up (owned), for gc__venv_check_config. */
static char *scanned;

/* --- Finding --virtualenv --------------------------------------------------------- */

/* Whether word names --virtualenv as argparse reads it; *eq is set to its "=value"
 * part, or NULL. */
static int is_option(const char *word, const char **eq)
{
    if (strncmp(word, "--", 2) != 0 || word[2] == '\0')
        return 0;
    *eq = strchr(word, '=');
    size_t len = *eq ? (size_t)(*eq - word) : strlen(word);
    return gc__cli_long_option(word, len) == GC_S_virtualenv;
}

/* The value of the last --virtualenv in words (borrowed), or NULL. */
static const char *find_option(int n, char **words)
{
    const char *value = NULL, *eq;
    for (int i = 0; i < n; i++) {
        if (strcmp(words[i], "--") == 0)
            break;
        if (!is_option(words[i], &eq))
            continue;
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < n && words[i + 1][0] != '-')
            value = words[++i];
    }
    return value;
}

/* Splits text into words as shlex.split does (POSIX mode, no comments). Returns the
 * number of words, stored in *words (owned: one allocation holding the pointers and
 * the text), or -1 for an unterminated quote or no memory. */
static int split_words(const char *text, char ***words)
{
    size_t len = strlen(text), max = len / 2 + 1;
    char **out = malloc(max * sizeof(char *) + len + 1);
    if (out == NULL)
        return -1;
    char *dst = (char *)(out + max);
    int n = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p == '\0')
            break;
        out[n++] = dst;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            char quote = *p;
            if (quote == '\'' || quote == '"') {
                for (p++; *p && *p != quote; p++) {
                    /* Inside double quotes a backslash escapes only '"' and '\'. */
                    if (quote == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
                        p++;
                    *dst++ = *p;
                }
                if (*p++ != quote)
                    goto unterminated;
            } else if (*p == '\\') {
                if (*++p == '\0')
                    goto unterminated;
                *dst++ = *p++;
            } else {
                *dst++ = *p++;
            }
        }
        *dst++ = '\0';
    }
    *words = out;
    return n;
unterminated:
    free(out);
    return -1;
}

/* --- Checking a virtualenv -------------------------------------------------------- */

/* Checks that dir is a virtualenv this executable can use and writes its interpreter's
 * path to out. Returns 0, or -1 with why in reason. */
static int check_venv(const char *dir, char *out, size_t n, char *reason, size_t rlen)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/pyvenv.cfg", dir); /* dir is at most PATH_MAX */
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(reason, rlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* venv writes "version = 3.11.2", the virtualenv tool "version_info = 3.11.2.final.0". */
    int major = -1, minor = -1;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        char key[32];
        int ma, mi;
        if (sscanf(line, " %31[a-z_] = %d.%d", key, &ma, &mi) == 3 &&
            (strcmp(key, "version") == 0 || strcmp(key, "version_info") == 0)) {
            major = ma;
            minor = mi;
        }
    }
    fclose(f);
    if (major >= 0 && (major != PY_MAJOR_VERSION || minor != PY_MINOR_VERSION)) {
        snprintf(reason, rlen, "it was made with Python %d.%d; gunicorn-c embeds Python %d.%d",
                 major, minor, PY_MAJOR_VERSION, PY_MINOR_VERSION);
        return -1;
    }
    static const char *const names[] = {"python3", "python"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((size_t)snprintf(out, n, "%s/bin/%s", dir, names[i]) < n && access(out, X_OK) == 0)
            return 0;
    }
    snprintf(reason, rlen, "%s/bin/python3: %s", dir, strerror(ENOENT));
    return -1;
}

/* dir made absolute against the working directory, without trailing slashes. Returns
 * 0, or -1 when the result does not fit in n bytes. */
static int absolute(const char *dir, char *out, size_t n)
{
    char cwd[PATH_MAX];
    int len;
    if (dir[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
        len = snprintf(out, n, "%s/%s", cwd, dir);
    else
        len = snprintf(out, n, "%s", dir);
    if (len < 0 || (size_t)len >= n)
        return -1;
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    return 0;
}

/* The virtualenv this executable lives in (out: its directory), if any. */
static int own_venv(char *out, size_t n)
{
    char exe[PATH_MAX], cfg[PATH_MAX + 16];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0)
        return 0;
    exe[len] = '\0';
    for (int up = 0; up < 2; up++) { /* <venv>/bin/gunicorn-c -> <venv> */
        char *slash = strrchr(exe, '/');
        if (slash == NULL || slash == exe)
            return 0;
        *slash = '\0';
    }
    struct stat st;
    if ((size_t)snprintf(cfg, sizeof(cfg), "%s/pyvenv.cfg", exe) >= sizeof(cfg) ||
        stat(cfg, &st) < 0 || (size_t)snprintf(out, n, "%s", exe) >= n)
        return 0;
    return 1;
}

/* --- The choice ------------------------------------------------------------------- */

int gc__venv_program_name(int argc, char **argv, char *out, size_t n)
{
    char dir[PATH_MAX], reason[PATH_MAX + 128];
    free(scanned);
    scanned = NULL;
    const char *given = argc > 1 ? find_option(argc - 1, argv + 1) : NULL;
    char **env_words = NULL;
    const char *env_args = getenv("GUNICORN_CMD_ARGS");
    if (given == NULL && env_args != NULL) {
        int nwords = split_words(env_args, &env_words);
        given = nwords > 0 ? find_option(nwords, env_words) : NULL;
    }
    if (given != NULL && *given != '\0')
        scanned = strdup(given);
    free(env_words); /* given may point into it: use scanned from here on */
    if (scanned != NULL) {
        if (absolute(scanned, dir, sizeof(dir)) < 0)
            snprintf(reason, sizeof(reason), "%s", strerror(ENAMETOOLONG));
        else if (check_venv(dir, out, n, reason, sizeof(reason)) == 0)
            return 0;
        fprintf(stderr, "Error: --virtualenv %s is not a usable virtualenv: %s\n", scanned, reason);
        return -1;
    }
    if (own_venv(dir, sizeof(dir))) {
        if (check_venv(dir, out, n, reason, sizeof(reason)) == 0)
            return 0;
        gc__warning("Not using the virtualenv gunicorn-c is installed in: %s", reason);
    }
    const char *active = getenv("VIRTUAL_ENV");
    if (active != NULL && *active != '\0') {
        if (absolute(active, dir, sizeof(dir)) < 0)
            snprintf(reason, sizeof(reason), "%s", strerror(ENAMETOOLONG));
        else if (check_venv(dir, out, n, reason, sizeof(reason)) == 0)
            return 0;
        gc__warning("Ignoring VIRTUAL_ENV=%s: %s", active, reason);
    }
    snprintf(out, n, "%s", GC_PYTHON_EXECUTABLE);
    return 0;
}

void gc__venv_check_config(const gc__config_t *cfg)
{
    const char *value = gc__cfg_str(cfg, GC_S_virtualenv);
    if (value != NULL && *value != '\0' && (scanned == NULL || strcmp(value, scanned) != 0))
        gc__warning("virtualenv = %s comes too late to apply (the interpreter has started): "
                    "give --virtualenv on the command line or in GUNICORN_CMD_ARGS",
                    value);
}
