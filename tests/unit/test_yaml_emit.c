/* cmocka tests of runtime/yaml_emit.c: the block layout kubectl writes (`kubectl get -o yaml`:
 * a mapping's children one indent in, a sequence under a key at the key's column, literal
 * blocks with |, |-, |+ and |2), scalars, and refusing misplaced nodes. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kboot/yaml.h"

static kb_err err;

#define OK(call) assert_int_equal((call), 0)

static int setup(void **state)
{
    kb_yaml_emitter *em = malloc(sizeof *em);
    assert_non_null(em);
    OK(kb_yaml_emitter_init(em, 2, &err));
    *state = em;
    return 0;
}

static int teardown(void **state)
{
    kb_yaml_emitter_free(*state);
    free(*state);
    return 0;
}

static void assert_text(const kb_yaml_emitter *em, const char *want)
{
    if (em->len != strlen(want) || memcmp(em->text, want, em->len) != 0)
        fail_msg("emitted:\n%.*s\nwant:\n%s", (int)em->len, em->text ? em->text : "", want);
    assert_int_equal(kb_yaml_emitter_depth(em), 0);
}

static void key(kb_yaml_emitter *em, const char *k) { OK(kb_yaml_emit_key(em, k, strlen(k), &err)); }
static void str(kb_yaml_emitter *em, const char *s) { OK(kb_yaml_emit_string(em, s, strlen(s), &err)); }
static void kv(kb_yaml_emitter *em, const char *k, const char *v) { key(em, k), str(em, v); }

static void test_nested_maps_and_lists(void **state)
{
    kb_yaml_emitter *em = *state;
    OK(kb_yaml_emit_map_start(em, &err));
    kv(em, "apiVersion", "v1");
    kv(em, "kind", "Pod");
    key(em, "metadata");
    OK(kb_yaml_emit_map_start(em, &err));
    key(em, "labels");
    OK(kb_yaml_emit_map_start(em, &err));
    kv(em, "component", "etcd");
    OK(kb_yaml_emit_map_end(em, &err));
    kv(em, "name", "etcd-node");
    OK(kb_yaml_emit_map_end(em, &err));
    key(em, "spec");
    OK(kb_yaml_emit_map_start(em, &err));
    key(em, "containers");
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_map_start(em, &err));
    key(em, "command");
    OK(kb_yaml_emit_seq_start(em, &err));
    str(em, "etcd");
    str(em, "--name=node");
    OK(kb_yaml_emit_seq_end(em, &err));
    kv(em, "name", "etcd");
    key(em, "ports");
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_map_start(em, &err));
    key(em, "containerPort");
    OK(kb_yaml_emit_int(em, 2379, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    key(em, "hostNetwork");
    OK(kb_yaml_emit_bool(em, 1, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    assert_text(em, "apiVersion: v1\n"
                    "kind: Pod\n"
                    "metadata:\n"
                    "  labels:\n"
                    "    component: etcd\n"
                    "  name: etcd-node\n"
                    "spec:\n"
                    "  containers:\n"
                    "  - command:\n"
                    "    - etcd\n"
                    "    - --name=node\n"
                    "    name: etcd\n"
                    "    ports:\n"
                    "    - containerPort: 2379\n"
                    "  hostNetwork: true\n");
}

static void test_sequences_of_sequences(void **state)
{
    kb_yaml_emitter *em = *state;
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_int(em, 1, &err));
    OK(kb_yaml_emit_int(em, 2, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_null(em, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    OK(kb_yaml_emit_map_start(em, &err));
    kv(em, "a", "x");
    kv(em, "b", "c");
    OK(kb_yaml_emit_map_end(em, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    assert_text(em, "- - 1\n  - 2\n- - - null\n- a: x\n  b: c\n");
}

static void test_empty_collections(void **state)
{
    kb_yaml_emitter *em = *state;
    OK(kb_yaml_emit_map_start(em, &err));
    key(em, "a");
    OK(kb_yaml_emit_map_start(em, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    key(em, "b");
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    key(em, "c");
    OK(kb_yaml_emit_seq_start(em, &err));
    OK(kb_yaml_emit_map_start(em, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    OK(kb_yaml_emit_seq_start(em, &err)); /* a second document, empty */
    OK(kb_yaml_emit_seq_end(em, &err));
    assert_text(em, "a: {}\nb: []\nc:\n- {}\n---\n[]\n");
}

static void test_documents(void **state)
{
    kb_yaml_emitter *em = *state;
    for (int k = 0; k < 3; k++) {
        OK(kb_yaml_emit_map_start(em, &err));
        key(em, "i");
        OK(kb_yaml_emit_int(em, k, &err));
        OK(kb_yaml_emit_map_end(em, &err));
    }
    str(em, "6443"); /* a top-level scalar is a document too */
    assert_text(em, "i: 0\n---\ni: 1\n---\ni: 2\n---\n\"6443\"\n");
}

static void test_scalars(void **state)
{
    kb_yaml_emitter *em = *state;
    OK(kb_yaml_emit_map_start(em, &err));
    key(em, "port");
    OK(kb_yaml_emit_int(em, 6443, &err));
    kv(em, "portText", "6443");
    kv(em, "yes", "yes");
    kv(em, "on", "true");
    kv(em, "empty", "");
    kv(em, "colon", "a: b");
    kv(em, "quote", "'q'");
    kv(em, "tab", "a\tb");
    kv(em, "ctl", "\x01\a\x1b\\\"");
    kv(em, "nel", "\xc2\x85\xe2\x80\xa8");
    key(em, "min");
    OK(kb_yaml_emit_int(em, INT64_MIN, &err));
    key(em, "null");
    OK(kb_yaml_emit_null(em, &err));
    key(em, "off");
    OK(kb_yaml_emit_bool(em, 0, &err));
    OK(kb_yaml_emit_key_int(em, 1, &err));
    str(em, "integer key");
    OK(kb_yaml_emit_key_int(em, -2, &err));
    str(em, "-x");
    OK(kb_yaml_emit_map_end(em, &err));
    assert_text(em, "port: 6443\n"
                    "portText: \"6443\"\n"
                    "\"yes\": \"yes\"\n"
                    "\"on\": \"true\"\n"
                    "empty: \"\"\n"
                    "colon: 'a: b'\n"
                    "quote: '''q'''\n"
                    "tab: \"a\\tb\"\n"
                    "ctl: \"\\x01\\a\\e\\\\\\\"\"\n"
                    "nel: \"\\x85\\u2028\"\n"
                    "min: -9223372036854775808\n"
                    "\"null\": null\n"
                    "\"off\": false\n"
                    "1: integer key\n"
                    "-2: -x\n");
}

static void test_floats(void **state)
{
    kb_yaml_emitter *em = *state;
    const double f[] = { 1.5, 3.0, -0.0, 0.1, 1.0 / 3, 1e20, 1e-7, 2.5e-300, HUGE_VAL, -HUGE_VAL, NAN };
    OK(kb_yaml_emit_seq_start(em, &err));
    for (size_t k = 0; k < sizeof f / sizeof *f; k++)
        OK(kb_yaml_emit_float(em, f[k], &err));
    OK(kb_yaml_emit_seq_end(em, &err));
    /* shortest text that reads back, always with a '.' */
    assert_text(em, "- 1.5\n- 3.0\n- -0.0\n- 0.1\n- 0.3333333333333333\n- 1.0e+20\n- 1.0e-07\n"
                    "- 2.5e-300\n- .inf\n- -.inf\n- .nan\n");
}

static void test_literal_blocks(void **state)
{
    kb_yaml_emitter *em = *state;
    OK(kb_yaml_emit_map_start(em, &err));
    kv(em, "clip", "#!/bin/sh\necho \"a: b\" # not a comment\n");
    kv(em, "strip", "a\nb");
    kv(em, "keep", "a\nb\n\n");
    kv(em, "only", "\n");
    key(em, "data");
    OK(kb_yaml_emit_map_start(em, &err));
    kv(em, "lead", " a\nb\n");
    kv(em, "blank", "\n\nafter\n");
    OK(kb_yaml_emit_map_end(em, &err));
    key(em, "items");
    OK(kb_yaml_emit_seq_start(em, &err));
    str(em, "x\ny\n");
    str(em, " x\ny\n");
    OK(kb_yaml_emit_seq_end(em, &err));
    kv(em, "space", "a \nb");
    OK(kb_yaml_emit_map_end(em, &err));
    assert_text(em, "clip: |\n"
                    "  #!/bin/sh\n"
                    "  echo \"a: b\" # not a comment\n"
                    "strip: |-\n"
                    "  a\n"
                    "  b\n"
                    "keep: |+\n"
                    "  a\n"
                    "  b\n"
                    "\n"
                    "only: |2+\n"
                    "\n"
                    "data:\n"
                    "  lead: |2\n"
                    "     a\n"
                    "    b\n"
                    "  blank: |2\n"
                    "\n"
                    "\n"
                    "    after\n"
                    "items:\n"
                    "- |\n"
                    "  x\n"
                    "  y\n"
                    "- |2\n"
                    "   x\n"
                    "  y\n"
                    "space: \"a \\nb\"\n");
}

static void test_top_level_literal_and_indent(void **state)
{
    kb_yaml_emitter em;
    OK(kb_yaml_emitter_init(&em, 4, &err));
    OK(kb_yaml_emit_map_start(&em, &err));
    key(&em, "a");
    OK(kb_yaml_emit_map_start(&em, &err));
    kv(&em, "b", "x\ny\n");
    key(&em, "c");
    OK(kb_yaml_emit_seq_start(&em, &err));
    OK(kb_yaml_emit_map_start(&em, &err));
    kv(&em, "d", "1");
    kv(&em, "e", "2");
    OK(kb_yaml_emit_map_end(&em, &err));
    OK(kb_yaml_emit_seq_end(&em, &err));
    OK(kb_yaml_emit_map_end(&em, &err));
    OK(kb_yaml_emit_map_end(&em, &err));
    str(&em, "top\nlevel");
    assert_text(&em, "a:\n    b: |\n        x\n        y\n    c:\n    - d: \"1\"\n      e: \"2\"\n"
                     "---\n|-\n    top\n    level\n");
    kb_yaml_emitter_free(&em);
    assert_int_equal(kb_yaml_emitter_init(&em, 0, &err), -1);
    assert_int_equal(kb_yaml_emitter_init(&em, 10, &err), -1);
    kb_yaml_emitter_free(&em);
}

static void test_long_key_is_explicit(void **state)
{
    kb_yaml_emitter *em = *state;
    char k[1002];
    memset(k, 'k', 1001);
    k[1001] = '\0';
    OK(kb_yaml_emit_map_start(em, &err));
    key(em, "short");
    OK(kb_yaml_emit_map_start(em, &err));
    kv(em, k, "v");
    OK(kb_yaml_emit_map_end(em, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    char want[1100];
    snprintf(want, sizeof want, "short:\n  ? %s\n  : v\n", k);
    assert_text(em, want);
}

static void test_misplaced_nodes(void **state)
{
    kb_yaml_emitter *em = *state;
    OK(kb_yaml_emit_map_start(em, &err));
    assert_int_equal(kb_yaml_emit_int(em, 1, &err), -1); /* a value where a key is due */
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(kb_yaml_emit_seq_end(em, &err), -1);
    assert_int_equal(err.code, EINVAL);
    key(em, "a");
    assert_int_equal(kb_yaml_emit_key(em, "b", 1, &err), -1); /* a key where a value is due */
    assert_int_equal(kb_yaml_emit_map_end(em, &err), -1);
    OK(kb_yaml_emit_seq_start(em, &err));
    assert_int_equal(kb_yaml_emit_key_int(em, 1, &err), -1); /* a key in a sequence */
    OK(kb_yaml_emit_seq_end(em, &err));
    OK(kb_yaml_emit_map_end(em, &err));
    assert_int_equal(kb_yaml_emit_map_end(em, &err), -1); /* nothing open */
    assert_int_equal(kb_yaml_emit_key(em, "a", 1, &err), -1);
    assert_text(em, "a: []\n");
}

static void test_invalid_utf8(void **state)
{
    kb_yaml_emitter *em = *state;
    OK(kb_yaml_emit_map_start(em, &err));
    assert_int_equal(kb_yaml_emit_key(em, "\xff", 1, &err), -1);
    assert_int_equal(err.code, EILSEQ);
    assert_string_equal(err.msg, "invalid UTF-8 in key");
    key(em, "a");
    assert_int_equal(kb_yaml_emit_string(em, "a\xc0\x80", 3, &err), -1);
    assert_int_equal(err.code, EILSEQ);
    assert_string_equal(err.msg, "invalid UTF-8 in string");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nested_maps_and_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequences_of_sequences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_collections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scalars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_floats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_blocks, setup, teardown),
        cmocka_unit_test(test_top_level_literal_and_indent),
        cmocka_unit_test_setup_teardown(test_long_key_is_explicit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misplaced_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
