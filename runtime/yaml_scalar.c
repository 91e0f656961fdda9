/* Plain-scalar typing and the choice of a string's style (see include/kboot/yaml.h). */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kboot/yaml.h"
#include "yaml_internal.h"

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_oct(int c) { return c >= '0' && c <= '7'; }
static int hexval(int c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

static int word_in(const char *s, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && memcmp(s, *words, n) == 0)
            return 1;
    return 0;
}

/* ---- numerals in the C locale ----------------------------------------------------------- */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void c_locale_init(void) { c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

/* A '.' must mean the decimal point whatever setlocale() the embedding process made; the
 * thread's locale is switched only around the one call. Without a C locale object (out of
 * memory at first use) the process locale is used, which is "C" unless someone changed it. */
static locale_t enter_c_locale(void)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale ? uselocale(c_locale) : (locale_t)0;
}

static void leave_c_locale(locale_t old)
{
    if (old)
        uselocale(old);
}

double kb_yaml_strtod(const char *s)
{
    locale_t old = enter_c_locale();
    double f = strtod(s, NULL);
    leave_c_locale(old);
    return f;
}

void kb_yaml_format_g(char *buf, size_t cap, int prec, double f)
{
    locale_t old = enter_c_locale();
    snprintf(buf, cap, "%.*g", prec, f);
    leave_c_locale(old);
}

/* ---- YAML 1.2 core schema --------------------------------------------------------------- */

static const char *const core_null[] = { "~", "null", "Null", "NULL", NULL };
static const char *const core_true[] = { "true", "True", "TRUE", NULL };
static const char *const core_false[] = { "false", "False", "FALSE", NULL };

/* Digits s[0..n) in base 8, 10 or 16: an integer if it fits int64, else a float (as Go does). */
static void parse_digits(const char *s, size_t n, int base, int neg, struct kb_yaml_scalar *out)
{
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    double d = 0;
    int over = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned dig = (unsigned)hexval((unsigned char)s[k]);
        d = d * base + dig;
        if (!over && v > (lim - dig) / (unsigned)base)
            over = 1;
        else if (!over)
            v = v * (unsigned)base + dig;
    }
    if (over) {
        out->kind = KB_YAML_FLOAT;
        out->f = neg ? -d : d;
        out->overflow = 1;
    } else {
        out->kind = KB_YAML_INT;
        out->i = neg ? (int64_t)(0 - v) : (int64_t)v;
    }
}

/* [-+]? ( \.[0-9]+ | [0-9]+ (\.[0-9]*)? ) ([eE][-+]?[0-9]+)? */
static int core_float_syntax(const char *s, size_t n)
{
    size_t k = 0, before = 0, after = 0;
    if (k < n && (s[k] == '-' || s[k] == '+'))
        k++;
    while (k < n && is_digit(s[k]))
        k++, before++;
    if (k < n && s[k] == '.') {
        k++;
        while (k < n && is_digit(s[k]))
            k++, after++;
    }
    if (before == 0 && after == 0)
        return 0;
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        size_t exp = 0;
        k++;
        if (k < n && (s[k] == '-' || s[k] == '+'))
            k++;
        while (k < n && is_digit(s[k]))
            k++, exp++;
        if (exp == 0)
            return 0;
    }
    return k == n;
}

/* want_value = 0: only the kind matters (choosing a style), so no float is converted. */
static void resolve(const char *s, size_t n, struct kb_yaml_scalar *out, int want_value)
{
    memset(out, 0, sizeof *out);
    out->kind = KB_YAML_STR;
    if (n == 0 || word_in(s, n, core_null)) {
        out->kind = KB_YAML_NULL;
        return;
    }
    if (word_in(s, n, core_true) || word_in(s, n, core_false)) {
        out->kind = KB_YAML_BOOL;
        out->b = s[0] == 't' || s[0] == 'T';
        return;
    }
    size_t k = 0;
    int neg = 0;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        k = 1;
    }
    const char *rest = s + k;
    size_t m = n - k;
    if (k == 0 && n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        int (*ok)(int) = s[1] == 'x' ? is_hex : is_oct;
        for (size_t j = 2; j < n; j++)
            if (!ok((unsigned char)s[j]))
                return;
        parse_digits(s + 2, n - 2, s[1] == 'x' ? 16 : 8, 0, out);
        return;
    }
    if (m > 0) {
        size_t j = 0;
        while (j < m && is_digit(rest[j]))
            j++;
        if (j == m) {
            parse_digits(rest, m, 10, neg, out);
            if (out->overflow && want_value) /* let strtod round the decimal exactly */
                out->f = kb_yaml_strtod(s);
            return;
        }
    }
    static const char *const inf[] = { ".inf", ".Inf", ".INF", NULL };
    static const char *const nan[] = { ".nan", ".NaN", ".NAN", NULL };
    if (word_in(rest, m, inf)) {
        out->kind = KB_YAML_FLOAT;
        out->f = neg ? -HUGE_VAL : HUGE_VAL;
        return;
    }
    if (k == 0 && word_in(s, n, nan)) {
        out->kind = KB_YAML_FLOAT;
        out->f = NAN;
        return;
    }
    if (core_float_syntax(s, n)) {
        out->kind = KB_YAML_FLOAT;
        if (want_value)
            out->f = kb_yaml_strtod(s);
    }
}

void kb_yaml_resolve(const char *s, size_t n, struct kb_yaml_scalar *out) { resolve(s, n, out, 1); }

/* ---- YAML 1.1 lookalikes ---------------------------------------------------------------- */

static int scan_digits(const char *s, size_t n, size_t *k, int (*ok)(int))
{
    size_t start = *k;
    while (*k < n && (ok((unsigned char)s[*k]) || s[*k] == '_'))
        (*k)++;
    return *k > start;
}

int kb_yaml_11_typed(const char *s, size_t n)
{
    static const char *const words[] = { "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                         "on", "On", "ON", "off", "Off", "OFF", "=", "<<", NULL };
    if (word_in(s, n, words))
        return 1;
    size_t k = 0;
    if (k < n && (s[k] == '-' || s[k] == '+'))
        k++;
    int prefix = n - k > 2 && s[k] == '0' ? s[k + 1] | 0x20 : 0; /* Go also takes 0X, 0B, 0O */
    if (prefix == 'b' || prefix == 'x' || prefix == 'o') {
        int (*ok)(int) = prefix == 'x' ? is_hex : prefix == 'o' ? is_oct : is_digit;
        k += 2;
        return scan_digits(s, n, &k, ok) && k == n; /* 0b with 2..9 digits: harmless to quote */
    }
    /* 4-digit year followed by '-': a timestamp to 1.1 readers, e.g. 2024-01-31T10:00:00Z */
    if (n >= 8 && k == 0 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        s[4] == '-' && is_digit(s[5]))
        return 1;
    int has_int = k < n && is_digit(s[k]) && scan_digits(s, n, &k, is_digit);
    if (k == n)
        return has_int;
    if (has_int && s[k] == ':') { /* sexagesimal: 1:30, 190:20:30.15 */
        while (k < n && s[k] == ':') {
            k++;
            if (!scan_digits(s, n, &k, is_digit))
                return 0;
        }
        if (k < n && s[k] == '.') {
            k++;
            scan_digits(s, n, &k, is_digit);
        }
        return k == n;
    }
    if (s[k] != '.')
        return 0;
    k++;
    int has_frac = scan_digits(s, n, &k, is_digit);
    if (!has_int && !has_frac)
        return 0;
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '-' || s[k] == '+'))
            k++;
        if (!scan_digits(s, n, &k, is_digit))
            return 0;
    }
    return k == n;
}

/* ---- style ------------------------------------------------------------------------------ */

int kb_yaml_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

int kb_yaml_printable(uint32_t c)
{
    return (c >= 0x20 && c <= 0x7E) || (c >= 0xA0 && c <= 0xD7FF && c != 0x2028 && c != 0x2029) ||
           (c >= 0xE000 && c <= 0xFFFD && c != 0xFEFF) || (c >= 0x10000 && c <= 0x10FFFF);
}

static int is_blank_at(const char *s, size_t n, size_t k) { return k >= n || s[k] == ' ' || s[k] == '\n'; }

/* The same analysis as libyaml's emitter makes: a string that would re-read as another type is
 * double-quoted; multi-line text is a literal block when it can be one; otherwise plain, or
 * single-quoted when an indicator or edge space forbids plain; double-quoted whenever
 * something must be escaped. */
enum kb_yaml_style kb_yaml_style(const char *s, size_t n, int key)
{
    int special = 0, breaks = 0, space_break = 0, indicator = 0;
    for (size_t k = 0; k < n;) {
        uint32_t c;
        int len = kb_yaml_utf8_next((const unsigned char *)s + k, n - k, &c);
        if (!len)
            return KB_YAML_INVALID;
        if (c == '\n') {
            breaks = 1;
            space_break |= k > 0 && s[k - 1] == ' ';
        } else if (!kb_yaml_printable(c)) { /* tab included, as in libyaml */
            special = 1;
        } else if (k == 0) {
            indicator |= (c < 0x80 && strchr("#,[]{}&*!|>'\"%@`?:", (int)c) != NULL) ||
                         (c == '-' && is_blank_at(s, n, 1));
        } else {
            indicator |= (c == ':' && is_blank_at(s, n, k + 1)) || (c == '#' && s[k - 1] == ' ');
        }
        k += (size_t)len;
    }
    if (n == 0 || special)
        return KB_YAML_DOUBLE;
    if (breaks) /* a block can keep neither blanks before a break nor a final space */
        return key || space_break || s[n - 1] == ' ' ? KB_YAML_DOUBLE : KB_YAML_LITERAL;
    struct kb_yaml_scalar sc;
    resolve(s, n, &sc, 0);
    if (sc.kind != KB_YAML_STR || kb_yaml_11_typed(s, n))
        return KB_YAML_DOUBLE;
    if (indicator || s[0] == ' ' || s[n - 1] == ' ' ||
        (n >= 3 && (memcmp(s, "---", 3) == 0 || memcmp(s, "...", 3) == 0)))
        return KB_YAML_SINGLE;
    return KB_YAML_PLAIN;
}
