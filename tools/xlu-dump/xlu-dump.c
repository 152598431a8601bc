/*
 * xlu-dump: print what Xen's own xl config parser (Debian's libxlutil, libxen-dev) makes of a
 * config, as one JSON object per config. It is the reference side of xen-sshm's differential
 * test (test/config/differential.test.ts), which compiles it at run time:
 *
 *   gcc -O1 -o xlu-dump tools/xlu-dump/xlu-dump.c -lxlutil
 *
 *   xlu-dump FILE...   each FILE through xlu_cfg_readfile(), one JSON line per FILE
 *   xlu-dump --batch   stdin holds records "<decimal length>\n<bytes>", each parsed with
 *                      xlu_cfg_readdata(); one JSON line per record (1,000 configs, 1 process)
 *
 * Output: {"ok":true,"count":N,"settings":{"name":{"op":"="|"+=","line":L,"value":V},...}}
 * where V is a string or a (possibly nested) array, and count is the number of assignment
 * statements; or {"ok":false,"errno":"EINVAL","report":"..."} when libxlutil refuses the text.
 * Strings are written byte for byte: bytes >= 0x80 become \u00XX (read them back as latin1).
 *
 * libxlutil.h has no way to enumerate the keys of a config, so the key names (and the op and
 * line of each statement) are read through the first fields of libxlutil's private structs as
 * laid out in Xen 4.17 (tools/libs/util/libxlu_internal.h). Everything else, the value of
 * each key, goes through the public API exactly as xl uses it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxlutil.h>

/* The leading members of libxlutil 4.17's private XLU_Config and XLU_ConfigSetting. */
struct setting_view {
    struct setting_view *next; /* newest statement first */
    char *name;
    XLU_ConfigValue *value;
    enum XLU_Operation op;
    int lineno;
};
struct config_view {
    struct setting_view *settings;
};

static void put_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    for (; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static int put_value(FILE *out, XLU_Config *cfg, XLU_ConfigValue *v)
{
    if (xlu_cfg_value_type(v) == XLU_STRING) {
        char *s = NULL;
        if (xlu_cfg_value_get_string(cfg, v, &s, 1)) return -1;
        put_string(out, s);
        return 0;
    }
    XLU_ConfigList *list = NULL;
    if (xlu_cfg_value_get_list(cfg, v, &list, 1)) return -1;
    fputc('[', out);
    for (int i = 0;; i++) {
        XLU_ConfigValue *item = xlu_cfg_get_listitem2(list, i);
        if (!item) break;
        if (i) fputc(',', out);
        if (put_value(out, cfg, item)) return -1;
    }
    fputc(']', out);
    return 0;
}

/* The value xl would see for NAME, through the public getters (they return the newest). */
static int put_named_value(FILE *out, XLU_Config *cfg, const char *name)
{
    XLU_ConfigList *list = NULL;
    int n = 0;
    int e = xlu_cfg_get_list(cfg, name, &list, &n, 1);
    if (e == EINVAL) {
        const char *s = NULL;
        if (xlu_cfg_get_string(cfg, name, &s, 1)) return -1;
        put_string(out, s);
        return 0;
    }
    if (e) return -1;
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        XLU_ConfigValue *item = xlu_cfg_get_listitem2(list, i);
        if (!item) return -1;
        if (i) fputc(',', out);
        if (put_value(out, cfg, item)) return -1;
    }
    fputc(']', out);
    return 0;
}

static const char *errno_name(int e)
{
    switch (e) {
    case EINVAL: return "EINVAL";
    case ERANGE: return "ERANGE";
    case ENOMEM: return "ENOMEM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    default: return "EOTHER";
    }
}

/* Parse with READ (readfile or readdata) and print one JSON line. */
static int dump(const char *source, const char *path, const char *data, int len)
{
    char *report = NULL;
    size_t report_len = 0;
    FILE *rf = open_memstream(&report, &report_len);
    if (!rf) return -1;
    XLU_Config *cfg = xlu_cfg_init(rf, source);
    if (!cfg) return -1;
    int e = path ? xlu_cfg_readfile(cfg, path) : xlu_cfg_readdata(cfg, data, len);
    fflush(rf);
    if (e) {
        printf("{\"ok\":false,\"errno\":\"%s\",\"report\":", errno_name(e));
        put_string(stdout, report ? report : "");
        printf("}\n");
    } else {
        struct setting_view *head = ((struct config_view *)cfg)->settings, *s, *t;
        int count = 0, first = 1;
        for (s = head; s; s = s->next) count++;
        printf("{\"ok\":true,\"count\":%d,\"settings\":{", count);
        for (s = head; s; s = s->next) {
            for (t = head; t != s; t = t->next)
                if (!strcmp(t->name, s->name)) break;
            if (t != s) continue; /* shadowed by a newer statement */
            if (!first) putchar(',');
            first = 0;
            put_string(stdout, s->name);
            printf(":{\"op\":\"%s\",\"line\":%d,\"value\":",
                   s->op == XLU_OP_ADDITION ? "+=" : "=", s->lineno);
            if (put_named_value(stdout, cfg, s->name)) {
                fprintf(stderr, "xlu-dump: cannot read back `%s'\n", s->name);
                return -1;
            }
            putchar('}');
        }
        printf("}}\n");
    }
    xlu_cfg_destroy(cfg);
    fclose(rf);
    free(report);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--batch")) {
        unsigned long len;
        while (scanf("%lu", &len) == 1) {
            if (getchar() != '\n' || len > (1u << 24)) return 2;
            char *buf = malloc(len ? len : 1);
            if (!buf || fread(buf, 1, len, stdin) != len) return 2;
            if (dump("batch", NULL, buf, (int)len)) return 1;
            free(buf);
        }
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: xlu-dump FILE... | xlu-dump --batch\n");
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (dump(argv[i], argv[i], NULL, 0)) return 1;
    return 0;
}
