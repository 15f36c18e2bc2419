/* describe.c: settings as text for people: --print-config, -h and docs/settings.md.
 *
 * Values are written the way Gunicorn shows them, which is Python's str() of the
 * value: True, None, ['127.0.0.1:8000'], {'X-FORWARDED-PROTO': 'https'}, so that the
 * output of `gunicorn --print-config` and `gunicorn-c --print-config` can be compared
 * line by line. */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "http/repr.h"

void gc__config_format_value(const gc__config_t *cfg, int id, FILE *out)
{
    const gc__setting_value_t *v = &cfg->v[id];
    switch (gc__setting_info(id)->type) {
    case GC_T_INT:
        fprintf(out, "%ld", v->i);
        break;
    case GC_T_BOOL:
        fputs(v->none ? "None" : v->i ? "True" : "False", out);
        break;
    case GC_T_LIST:
        fputc('[', out);
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                fputs(", ", out);
            gc__http_repr_print(out, v->items[i]);
        }
        fputc(']', out);
        break;
    case GC_T_STR:
    case GC_T_DICT:
    case GC_T_CALLABLE:
        fputs(v->s ? v->s : "None", out);
        break;
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(gc__setting_info(*(const int *)a)->name, gc__setting_info(*(const int *)b)->name);
}

void gc__config_print(const gc__config_t *cfg, FILE *out)
{
    int ids[GC_S__COUNT];
    size_t width = 0;
    for (int id = 0; id < GC_S__COUNT; id++) {
        ids[id] = id;
        size_t len = strlen(gc__setting_info(id)->name);
        width = len > width ? len : width;
    }
    qsort(ids, GC_S__COUNT, sizeof(ids[0]), by_name);
    for (int k = 0; k < GC_S__COUNT; k++) {
        fprintf(out, "%-*s = ", (int)width, gc__setting_info(ids[k])->name);
        gc__config_format_value(cfg, ids[k], out);
        fputc('\n', out);
    }
}

/* --- -h ----------------------------------------------------------------------------- */

/* The flags of a setting as argparse shows them: "-b ADDRESS, --bind ADDRESS". */
static void flag_text(int id, char *out, size_t cap, const char *sep, const char *quote)
{
    const gc__setting_info_t *info = gc__setting_info(id);
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = info->flags; p && *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len == 0)
            break;
        int n = snprintf(out + used, cap - used, "%s%s%.*s%s%s%s", used ? sep : "", quote, (int)len,
                         p, info->metavar ? " " : "", info->metavar ? info->metavar : "", quote);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
        p += len;
    }
}

static const char *status_note(int id)
{
    switch (gc__setting_info(id)->status) {
    case GC_PENDING:
        return " (not yet active in gunicorn-c)";
    case GC_NO_EFFECT:
        return " (no effect in gunicorn-c)";
    case GC_NO_DIRTY:
        return " (cannot apply to gunicorn-c)";
    default:
        return "";
    }
}

/* One option of -h, laid out as argparse does: the flags from column 2, the help
 * from column 24 (on the next line when the flags are longer than 20 characters),
 * wrapped to 54 characters. */
static void help_entry(FILE *out, const char *flags, const char *text)
{
    const int indent = 24, width = 54;
    if (strlen(flags) <= 20)
        fprintf(out, "  %-20s  ", flags);
    else
        fprintf(out, "  %s\n%*s", flags, indent, "");
    int col = 0;
    for (const char *p = text; *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len == 0)
            break;
        if (col > 0 && col + 1 + (int)len > width) {
            fprintf(out, "\n%*s", indent, "");
            col = 0;
        }
        if (col > 0) {
            fputc(' ', out);
            col++;
        }
        fwrite(p, 1, len, out);
        col += (int)len;
        p += len;
    }
    fputc('\n', out);
}

void gc__config_usage(FILE *out)
{
    gc__config_t defaults;
    if (gc__config_init(&defaults) < 0) {
        gc__config_free(&defaults);
        return;
    }
    fputs("usage: gunicorn-c [OPTIONS] [APP_MODULE]\n\npositional arguments:\n", out);
    help_entry(out, "APP_MODULE",
               "The WSGI application: module[:variable], or module:factory(args); the "
               "variable defaults to 'application'.");
    fputs("\noptions:\n", out);
    help_entry(out, "-h, --help", "show this help message and exit");
    help_entry(out, "-v, --version", "show program's version number and exit");
    for (int id = 0; id < GC_S__COUNT; id++) {
        if (gc__setting_info(id)->flags == NULL)
            continue;
        char flags[160], *value = NULL, *help = NULL;
        size_t vlen = 0, hlen = 0;
        flag_text(id, flags, sizeof(flags), ", ", "");
        FILE *v = open_memstream(&value, &vlen);
        if (v == NULL)
            continue;
        gc__config_format_value(&defaults, id, v);
        fclose(v);
        FILE *h = open_memstream(&help, &hlen);
        if (h != NULL) {
            /* The first sentence, the status and the default, as Gunicorn's
             * "<short description> [<default>]". */
            const char *text = gc__setting_info(id)->help;
            const char *stop = strstr(text, ". ");
            int len = stop ? (int)(stop - text + 1) : (int)strlen(text);
            fprintf(h, "%.*s%s [%s]", len, text, status_note(id), value);
            fclose(h);
            help_entry(out, flags, help);
        }
        free(value);
        free(help);
    }
    gc__config_free(&defaults);
}

/* --- docs/settings.md --------------------------------------------------------------- */

static const char *status_text(enum gc__setting_status s)
{
    switch (s) {
    case GC_ACTIVE:
        return "active";
    case GC_PENDING:
        return "accepted, not yet active (a warning at start-up when set)";
    case GC_NO_EFFECT:
        return "accepted, no effect in gunicorn-c";
    case GC_NO_DIRTY:
        return "cannot apply: gunicorn-c has no dirty arbiters (an error when set)";
    }
    return "";
}

/* Defaults that depend on the machine are described rather than shown. */
static const char *described_default(int id)
{
    switch (id) {
    case GC_S_chdir:
        return "the working directory gunicorn-c starts in";
    case GC_S_user:
        return "the effective user id of the process";
    case GC_S_group:
        return "the effective group id of the process";
    case GC_S_control_socket:
        return "`$XDG_RUNTIME_DIR/gunicorn.ctl` or `~/.gunicorn/gunicorn.ctl`";
    case GC_S_bind:
        return "`['127.0.0.1:8000']`, or `['0.0.0.0:$PORT']` when `PORT` is set";
    case GC_S_workers:
        return "`1`, or `$WEB_CONCURRENCY` when it is set";
    case GC_S_forwarded_allow_ips:
        return "`['127.0.0.1', '::1']`, or `$FORWARDED_ALLOW_IPS` when it is set";
    default:
        return NULL;
    }
}

void gc__config_markdown(FILE *out)
{
    gc__config_t defaults;
    if (gc__config_init(&defaults) < 0) {
        gc__config_free(&defaults);
        return;
    }
    fputs("# Settings\n\n"
          "<!-- Generated by tools/gen-settings-doc.sh from src/config/settings.def; "
          "do not edit. -->\n\n"
          "Every Gunicorn 26.1 setting is listed, with Gunicorn's name, command-line "
          "flags and default. A setting is set in a config file by its name "
          "(`workers = 4`), on the command line by its flags, or in `GUNICORN_CMD_ARGS`; "
          "see [configuration.md](configuration.md) for the order in which those "
          "sources apply.\n\n"
          "Each setting has a status:\n\n"
          "- **active**: gunicorn-c acts on it.\n"
          "- **not yet active**: accepted and shown by `--print-config`, but without an "
          "effect for now; a warning is logged at start-up when it is set.\n"
          "- **no effect**: accepted, and without an effect by design.\n"
          "- **cannot apply**: the feature (ASGI, dirty arbiters) is outside "
          "what gunicorn-c is; giving it any value but its default is an error.\n",
          out);
    const char *section = "";
    for (int id = 0; id < GC_S__COUNT; id++) {
        const gc__setting_info_t *info = gc__setting_info(id);
        if (strcmp(section, info->section) != 0) {
            section = info->section;
            fprintf(out, "\n## %s\n", section);
        }
        fprintf(out, "\n### `%s`\n\n", info->name);
        if (info->flags != NULL) {
            char flags[256];
            flag_text(id, flags, sizeof(flags), ", ", "`");
            fprintf(out, "- Command line: %s\n", flags);
        } else if (info->type == GC_T_CALLABLE || info->type == GC_T_DICT) {
            fputs("- Command line: none (a config file sets it)\n", out);
        } else {
            fputs("- Command line: none (config file only)\n", out);
        }
        const char *described = described_default(id);
        if (described != NULL) {
            fprintf(out, "- Default: %s\n", described);
        } else if (info->type == GC_T_CALLABLE) {
            fputs("- Default: none (`None` in `--print-config`)\n", out);
        } else if (info->type == GC_T_STR && defaults.v[id].s && !defaults.v[id].s[0]) {
            fputs("- Default: `''` (an empty string)\n", out);
        } else {
            fputs("- Default: `", out);
            gc__config_format_value(&defaults, id, out);
            fputs("`\n", out);
        }
        fprintf(out, "- Status: %s\n\n%s\n", status_text(info->status), info->help);
    }
    gc__config_free(&defaults);
}
