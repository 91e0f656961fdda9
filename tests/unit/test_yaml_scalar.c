/* cmocka tests of runtime/yaml_scalar.c: plain-scalar typing by the YAML 1.2 core schema
 * (yaml.org/spec/1.2.2, 10.3.2), YAML 1.1 lookalikes (yaml.org/type/{bool,int,float,
 * timestamp}), and the style a string is written in. The expected styles are what kubectl
 * (Go's yaml) writes, e.g. `kubectl create configmap x --from-literal=port=6443 -o yaml`
 * gives `port: "6443"`; the 1.1 cases were checked against PyYAML's safe_load. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kboot/yaml.h"

static struct kb_yaml_scalar resolve(const char *s)
{
    struct kb_yaml_scalar sc;
    kb_yaml_resolve(s, strlen(s), &sc);
    return sc;
}

static void assert_kind(const char *s, enum kb_yaml_kind kind)
{
    struct kb_yaml_scalar sc = resolve(s);
    if (sc.kind != kind)
        fail_msg("\"%s\": kind %d, want %d", s, (int)sc.kind, (int)kind);
}

static void assert_int(const char *s, int64_t want)
{
    struct kb_yaml_scalar sc = resolve(s);
    if (sc.kind != KB_YAML_INT || sc.i != want)
        fail_msg("\"%s\": kind %d value %lld, want integer %lld", s, (int)sc.kind, (long long)sc.i,
                 (long long)want);
}

static void assert_float(const char *s, double want)
{
    struct kb_yaml_scalar sc = resolve(s);
    if (sc.kind != KB_YAML_FLOAT || sc.f != want)
        fail_msg("\"%s\": kind %d value %.17g, want float %.17g", s, (int)sc.kind, sc.f, want);
}

static void assert_bool(const char *s, int want)
{
    struct kb_yaml_scalar sc = resolve(s);
    if (sc.kind != KB_YAML_BOOL || sc.b != want)
        fail_msg("\"%s\": kind %d, want bool %d", s, (int)sc.kind, want);
}

/* ---- YAML 1.2 core schema ---- */

static void test_null(void **state)
{
    const char *nulls[] = { "", "~", "null", "Null", "NULL" };
    for (size_t k = 0; k < sizeof nulls / sizeof *nulls; k++)
        assert_kind(nulls[k], KB_YAML_NULL);
    /* only the three spellings */
    assert_kind("nULL", KB_YAML_STR);
    assert_kind("nil", KB_YAML_STR);
    assert_kind("None", KB_YAML_STR);
}

static void test_bool(void **state)
{
    assert_bool("true", 1);
    assert_bool("True", 1);
    assert_bool("TRUE", 1);
    assert_bool("false", 0);
    assert_bool("False", 0);
    assert_bool("FALSE", 0);
    assert_kind("tRUE", KB_YAML_STR);
    /* YAML 1.1's other booleans are strings under 1.2 */
    const char *words[] = { "yes", "Yes", "no", "NO", "on", "On", "off", "OFF", "y", "Y", "n", "N" };
    for (size_t k = 0; k < sizeof words / sizeof *words; k++)
        assert_kind(words[k], KB_YAML_STR);
}

static void test_int(void **state)
{
    assert_int("6443", 6443);
    assert_int("0", 0);
    assert_int("-3", -3);
    assert_int("+4", 4);
    assert_int("-0", 0);
    assert_int("0x1F", 31);
    assert_int("0xff", 255);
    assert_int("0o17", 15);
    /* core has no 1.1-style octal: a leading zero is still decimal */
    assert_int("0644", 644);
    assert_int("012", 12);
    assert_int("9223372036854775807", INT64_MAX);
    assert_int("-9223372036854775808", INT64_MIN);
    /* what is not a core integer */
    const char *strs[] = { "0x", "0o", "0x1G", "0o8", "-0x1", "+0o7", "0X1F", "0b101", "1_000",
                           "1:30", "+", "-", "6443a", "64 43" };
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
        assert_kind(strs[k], KB_YAML_STR);
}

static void test_int_overflow_is_float(void **state)
{
    struct kb_yaml_scalar sc = resolve("9223372036854775808");
    assert_int_equal(sc.kind, KB_YAML_FLOAT);
    assert_true(sc.overflow);
    assert_true(sc.f == 9223372036854775808.0);
    sc = resolve("-9223372036854775809");
    assert_int_equal(sc.kind, KB_YAML_FLOAT);
    assert_true(sc.overflow);
    assert_true(sc.f == -9223372036854775808.0);
    /* rounded as strtod rounds the decimal, not digit by digit */
    sc = resolve("123456789012345678901234567890");
    assert_true(sc.f == 123456789012345678901234567890.0);
    sc = resolve("0xffffffffffffffffff");
    assert_int_equal(sc.kind, KB_YAML_FLOAT);
    assert_true(sc.overflow);
    assert_true(fabs(sc.f - 0x1p72) < 0x1p72 * 1e-15); /* 2^72 - 1 */
    assert_false(resolve("9223372036854775807").overflow);
}

static void test_float(void **state)
{
    assert_float("1.5", 1.5);
    assert_float("-1.5", -1.5);
    assert_float("+1.5", 1.5);
    assert_float(".5", 0.5);
    assert_float("1.", 1.0);
    assert_float("1e3", 1000.0);
    assert_float("1E-3", 0.001);
    assert_float("2.5e+2", 250.0);
    assert_float("0.1", 0.1);
    assert_float("1e400", HUGE_VAL);
    assert_float(".inf", HUGE_VAL);
    assert_float(".Inf", HUGE_VAL);
    assert_float("+.INF", HUGE_VAL);
    assert_float("-.inf", -HUGE_VAL);
    struct kb_yaml_scalar sc = resolve(".nan");
    assert_int_equal(sc.kind, KB_YAML_FLOAT);
    assert_true(isnan(sc.f));
    assert_kind(".NaN", KB_YAML_FLOAT);
    assert_kind(".NAN", KB_YAML_FLOAT);
    const char *strs[] = { "-.nan", ".nAn", "inf", "nan", ".", "1e", "e3", "1.2.3", "1.5x",
                           "1,5", "v1.31.0", "10.96.0.0/12", "1.0e+", "--1" };
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
        assert_kind(strs[k], KB_YAML_STR);
}

static void test_strings(void **state)
{
    const char *strs[] = { "kube-system", "2024-01-31", "2024-01-31T10:00:00Z", "250m", "a: b",
                           "=", "<<", "-", "--advertise-address=10.0.0.1" };
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
        assert_kind(strs[k], KB_YAML_STR);
}

/* The text stops at n: what follows is not read. */
static void test_length_bounds(void **state)
{
    struct kb_yaml_scalar sc;
    kb_yaml_resolve("64431", 4, &sc);
    assert_int_equal(sc.kind, KB_YAML_INT);
    assert_int_equal(sc.i, 6443);
    kb_yaml_resolve("truex", 4, &sc);
    assert_int_equal(sc.kind, KB_YAML_BOOL);
    kb_yaml_resolve("null", 0, &sc);
    assert_int_equal(sc.kind, KB_YAML_NULL);
}

/* ---- YAML 1.1 ---- */

static void test_yaml11_typed(void **state)
{
    const char *typed[] = {
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
        "=", "<<",                                   /* value and merge keys */
        "6443", "-1", "+1", "0644", "1_000", "0b101", "0x1F", "0X1F", "0o17", "-0x1f",
        "1:30", "190:20:30.15",                      /* sexagesimal */
        "1.5", ".5", "1.", "1.0e+3", "1_0.5",
        "2024-01-31", "2024-01-31T10:00:00Z", "2001-12-14 21:59:43.10 -5",
    };
    for (size_t k = 0; k < sizeof typed / sizeof *typed; k++)
        if (!kb_yaml_11_typed(typed[k], strlen(typed[k])))
            fail_msg("\"%s\" is typed by YAML 1.1", typed[k]);
    const char *plain[] = {
        "yES", "nO ", "true1", "v1.31.0", "10.96.0.0/12", "1.2.3", "abc", "1e3", /* 1.1 floats need a '.' */
        "0x", "0b", "1:", ":30", "1:3a", "202-01-31", ".", "-", "", "250m",
    };
    for (size_t k = 0; k < sizeof plain / sizeof *plain; k++)
        if (kb_yaml_11_typed(plain[k], strlen(plain[k])))
            fail_msg("\"%s\" is a string to YAML 1.1", plain[k]);
}

/* ---- style ---- */

static void assert_style(const char *s, enum kb_yaml_style want)
{
    enum kb_yaml_style got = kb_yaml_style(s, strlen(s), 0);
    if (got != want)
        fail_msg("\"%s\": style %d, want %d", s, (int)got, (int)want);
}

static void test_style_retyping_is_double_quoted(void **state)
{
    /* 1.2 re-typing, as kubectl quotes it */
    const char *go[] = { "6443", "true", "True", "false", "null", "~", "", "1.5", ".inf", "0x1F", "0o17", "-3" };
    /* 1.1 re-typing: Go's yaml.v2 quotes these too ("y" and "yes" included) */
    const char *v11[] = { "yes", "No", "on", "OFF", "y", "N", "0644", "1_000", "0b101", "1:30",
                          "2024-01-31", "2024-01-31T10:00:00Z", "=", "<<" };
    for (size_t k = 0; k < sizeof go / sizeof *go; k++)
        assert_style(go[k], KB_YAML_DOUBLE);
    for (size_t k = 0; k < sizeof v11 / sizeof *v11; k++)
        assert_style(v11[k], KB_YAML_DOUBLE);
}

static void test_style_plain(void **state)
{
    const char *plain[] = { "kube-system", "v1.31.0", "10.96.0.0/12", "250m", "it's", "-flag",
                            "--advertise-address=10.0.0.1", "a:b", "a#b", "https://10.0.0.1:6443/a?b=1#c",
                            "C:\\path", "ünïcødé ☃", "1e", "yES", "a b", "x-", "-.nan" };
    for (size_t k = 0; k < sizeof plain / sizeof *plain; k++)
        assert_style(plain[k], KB_YAML_PLAIN);
}

static void test_style_single_quoted(void **state)
{
    /* an indicator first, ": " or " #" inside, an edge space, a document marker */
    const char *single[] = { "a: b", "a:", "a #b", "#x", "- item", "-", "!tag", "*alias", "&anchor", "%x",
                             "@x", "`x", "{a}", "[a]", ",x", "|x", ">x", "'q'", "\"dq\"", "?x", ":x",
                             " x", "x ", "---", "...", "--- x" };
    for (size_t k = 0; k < sizeof single / sizeof *single; k++)
        assert_style(single[k], KB_YAML_SINGLE);
}

static void test_style_escapes_are_double_quoted(void **state)
{
    const char *dbl[] = { "a\tb", "bell\a", "esc\x1b", "\r\n", "nel\xc2\x85", "ls\xe2\x80\xa8",
                          "bom\xef\xbb\xbf", "del\x7f" };
    for (size_t k = 0; k < sizeof dbl / sizeof *dbl; k++)
        assert_style(dbl[k], KB_YAML_DOUBLE);
    assert_int_equal(kb_yaml_style("a\0b", 3, 0), KB_YAML_DOUBLE);
}

static void test_style_multiline(void **state)
{
    assert_style("line one\nline two\n", KB_YAML_LITERAL);
    assert_style("a\nb", KB_YAML_LITERAL);
    assert_style("\n", KB_YAML_LITERAL);
    assert_style(" a\nb\n", KB_YAML_LITERAL);
    assert_style("#!/bin/sh\necho \"a: b\" # not a comment\n", KB_YAML_LITERAL);
    /* a block keeps neither a space before a break nor a final space; a tab needs escaping */
    assert_style("a \nb", KB_YAML_DOUBLE);
    assert_style("a\nb ", KB_YAML_DOUBLE);
    assert_style("a\n\tb", KB_YAML_DOUBLE);
    /* a key is never a block */
    assert_int_equal(kb_yaml_style("a\nb", 3, 1), KB_YAML_DOUBLE);
    assert_int_equal(kb_yaml_style("6443", 4, 1), KB_YAML_DOUBLE);
    assert_int_equal(kb_yaml_style("name", 4, 1), KB_YAML_PLAIN);
}

static void test_style_invalid_utf8(void **state)
{
    const char *bad[] = { "\xff", "a\x80", "\xc0\x80" /* overlong */, "\xed\xa0\x80" /* surrogate */,
                          "\xf4\x90\x80\x80" /* > U+10FFFF */, "\xe6\x97" /* cut short */ };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        assert_style(bad[k], KB_YAML_INVALID);
    assert_style("\xf0\x9f\x98\x80", KB_YAML_PLAIN); /* U+1F600 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_int_overflow_is_float),
        cmocka_unit_test(test_float),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_length_bounds),
        cmocka_unit_test(test_yaml11_typed),
        cmocka_unit_test(test_style_retyping_is_double_quoted),
        cmocka_unit_test(test_style_plain),
        cmocka_unit_test(test_style_single_quoted),
        cmocka_unit_test(test_style_escapes_are_double_quoted),
        cmocka_unit_test(test_style_multiline),
        cmocka_unit_test(test_style_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
