/* Helpers shared by runtime/yaml_scalar.c and runtime/yaml_emit.c only. */
#ifndef KBOOT_YAML_INTERNAL_H
#define KBOOT_YAML_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kboot/yaml.h"

/* One code point of strict UTF-8 (no overlongs, surrogates or > U+10FFFF) from s[0..n), n > 0:
 * its length in bytes, or 0 if invalid. */
int kb_yaml_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* YAML's printable set, minus what 1.1 readers take for line breaks (NEL, LS, PS) and the BOM. */
int kb_yaml_printable(uint32_t c);
/* strtod of a NUL-terminated numeral in the C locale, whatever the process's locale is. */
double kb_yaml_strtod(const char *s);
/* snprintf of one double with "%.*g" in the C locale. */
void kb_yaml_format_g(char *buf, size_t cap, int prec, double f);

#endif
