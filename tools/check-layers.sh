#!/usr/bin/env bash
# Checks the layer rules of DESIGN.md: runtime/ and include/ are plain C (no Lua headers), no C file
# knows Kubernetes (that is policy, and policy lives in scripts/), and runtime/ has no include cycles.
# Prints one "file:line: problem" per finding and exits 1 when there is any.
#
# usage: tools/check-layers.sh [ROOT]   (ROOT defaults to the checkout holding this script)
#        CHECK_LAYERS_EDGES=1 also prints the file dependency edges the cycle check found.
#
# Include cycles are looked for at two levels:
#  - headers: a quoted #include chain among runtime/*.h and include/kboot/*.h that comes back to itself;
#  - files: a.c uses something that a header it includes declares and b.c defines, and b.c does the
#    same with a.c (directly or through more files). Sharing one header is not enough for an edge:
#    a file must use a name that another file defines. A file using its own header is no edge.
set -u

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || { echo "check-layers: cannot enter $root" >&2; exit 2; }
for d in runtime include bindings; do
    [ -d "$d" ] || { echo "check-layers: $root/$d: no such directory" >&2; exit 2; }
done

found=0
report() { # file:line:text lines on stdin, a description in $1
    local loc rest n=0
    while IFS= read -r l; do
        loc=${l%%:*}; rest=${l#*:}
        printf '%s:%s: %s\n' "$loc" "${rest%%:*}" "$1"
        n=$((n + 1))
    done
    return $((n > 0))
}

# 1. Lua headers outside bindings/.
grep -rnE --include='*.c' --include='*.h' \
    '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]*/)?(lua|lauxlib|lualib|luaconf)\.h[>"]' \
    runtime include | report "Lua header in the runtime layer (only bindings/ may use Lua)" || found=1

# 2. Kubernetes words in C, comments included: C knows files, keys and HTTP, not what they mean.
for w in kube-apiserver /etc/kubernetes kube-system ClusterRole kubeadm; do
    grep -rnF --include='*.c' --include='*.h' -e "$w" runtime include bindings |
        report "Kubernetes word '$w' in C (say it in scripts/)" || found=1
done

# 3. Include cycles.
shopt -s nullglob
files=(runtime/*.c runtime/*.h include/kboot/*.h)
if [ ${#files[@]} -gt 0 ]; then
    awk '
    function dirof(p) { sub(/\/[^\/]*$/, "", p); return p }
    function base(p) { sub(/^.*\//, "", p); return p }
    # The identifier right before the first "(" of s, or "".
    function name_before_paren(s,   i, t) {
        i = index(s, "(")
        if (i < 2) return ""
        t = substr(s, 1, i - 1)
        if (t !~ /[A-Za-z0-9_]$/) return ""
        sub(/^.*[^A-Za-z0-9_]/, "", t)
        return t
    }
    FNR == 1 { incomment = 0; known[FILENAME] = 1; nfiles++; order[nfiles] = FILENAME }
    {
        line = $0
        if (line ~ /^[ \t]*#[ \t]*include[ \t]*"/) {
            h = line; sub(/^[^"]*"/, "", h); sub(/".*$/, "", h)
            n = ++ninc[FILENAME]; inc[FILENAME, n] = h; incline[FILENAME, n] = FNR
            next
        }
        # Drop literals, then comments, so words in them are no uses.
        gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
        gsub(/'\''(\\.|[^'\''\\])'\''/, "0", line)
        out = ""
        while (line != "") {
            if (incomment) {
                i = index(line, "*/")
                if (!i) { line = ""; break }
                line = substr(line, i + 2); incomment = 0; continue
            }
            i = index(line, "/*"); j = index(line, "//")
            if (j && (!i || j < i)) { out = out substr(line, 1, j - 1); break }
            if (!i) { out = out line; break }
            out = out substr(line, 1, i - 1) " "; line = substr(line, i + 2); incomment = 1
        }
        if (out ~ /^[ \t]*#/) next
        if (FILENAME ~ /\.h$/) {
            if (out ~ /^extern[ \t]/ && out !~ /\(/) {
                t = out; sub(/[ \t]*(\[[^]]*\])?[ \t]*;.*$/, "", t); sub(/^.*[^A-Za-z0-9_]/, "", t)
                if (t != "") decl[FILENAME] = decl[FILENAME] " " t
            } else if (out ~ /^[A-Za-z_]/ && out !~ /^(typedef|static)[ \t]/) {
                t = name_before_paren(out)
                if (t != "") decl[FILENAME] = decl[FILENAME] " " t
            }
            next
        }
        # A .c file: record the words it uses and what it defines at file scope.
        t = out; gsub(/[^A-Za-z0-9_]+/, " ", t)
        nw = split(t, words, " ")
        for (k = 1; k <= nw; k++) used[FILENAME, words[k]] = 1
        if (out ~ /^[A-Za-z_]/ && out !~ /^(static|extern|typedef)[ \t]/) {
            if (out ~ /\(/) {
                if (out !~ /;/ || out ~ /\)[ \t]*\{/) { t = name_before_paren(out); if (t != "" && !(t in def)) def[t] = FILENAME }
            } else if (out ~ /;[ \t]*$/ && out !~ /^(struct|union|enum)[ \t]+[A-Za-z0-9_]+[ \t]*;/) {
                t = out; sub(/[ \t]*=.*$/, "", t); sub(/[ \t]*;.*$/, "", t); sub(/[ \t]*\[[^]]*\]$/, "", t)
                sub(/^.*[^A-Za-z0-9_]/, "", t)
                if (t != "" && !(t in def)) def[t] = FILENAME
            }
        }
    }
    function resolve(from, h,   c) {
        c = dirof(from) "/" h
        if (c in known) return c
        c = "include/" h
        if (c in known) return c
        return ""
    }
    # Header graph: depth-first search, reporting each back edge as a cycle.
    function hdfs(f,   k, g, s, p) {
        hcolor[f] = 1; hstack[++hsp] = f
        for (k = 1; k <= ninc[f]; k++) {
            g = resolve(f, inc[f, k])
            if (g == "") continue
            if (hcolor[g] == 1) {
                s = ""
                for (p = hsp; p >= 1; p--) { s = hstack[p] " -> " s; if (hstack[p] == g) break }
                printf "%s:%d: include cycle: %s%s\n", f, incline[f, k], s, g
                bad = 1
            } else if (!hcolor[g]) hdfs(g)
        }
        hsp--; hcolor[f] = 2
    }
    # Headers reachable from header h (h included), into reach[].
    function reach_from(h,   k, g) {
        if (h in reach) return
        reach[h] = 1
        for (k = 1; k <= ninc[h]; k++) { g = resolve(h, inc[h, k]); if (g != "") reach_from(g) }
    }
    function udfs(c,   k, d, s, p) {
        ucolor[c] = 1; ustack[++usp] = c
        for (k = 1; k <= nedge[c]; k++) {
            d = edge[c, k]
            if (ucolor[d] == 1) {
                s = ""
                for (p = usp; p >= 1; p--) {
                    s = base(ustack[p]) " -> " s
                    if (ustack[p] == d) break
                }
                printf "%s:%d: include cycle: %s%s (", c, why_line[c, d], s, base(d)
                sep = ""
                for (p = p; p <= usp; p++) {
                    x = ustack[p]; y = (p < usp) ? ustack[p + 1] : d
                    printf "%s%s uses %s from %s via %s", sep, base(x), why_name[x, y], base(y), base(why_hdr[x, y])
                    sep = "; "
                }
                printf ")\n"
                bad = 1
            } else if (!ucolor[d]) udfs(d)
        }
        usp--; ucolor[c] = 2
    }
    END {
        for (i = 1; i <= nfiles; i++) if (order[i] ~ /\.h$/ && !hcolor[order[i]]) hdfs(order[i])
        for (i = 1; i <= nfiles; i++) {
            c = order[i]
            if (c !~ /\.c$/) continue
            for (k = 1; k <= ninc[c]; k++) {
                h = resolve(c, inc[c, k])
                if (h == "") continue
                split("", reach); reach_from(h)
                for (r in reach) {
                    n = split(decl[r], names, " ")
                    for (m = 1; m <= n; m++) {
                        nm = names[m]
                        if (!(nm in def) || def[nm] == c || !((c, nm) in used)) continue
                        d = def[nm]
                        if ((c, d) in why_line) continue
                        why_line[c, d] = incline[c, k]; why_name[c, d] = nm; why_hdr[c, d] = r
                        edge[c, ++nedge[c]] = d
                    }
                }
            }
        }
        if (ENVIRON["CHECK_LAYERS_EDGES"] != "")
            for (i = 1; i <= nfiles; i++)
                for (k = 1; k <= nedge[order[i]]; k++)
                    printf "edge %s -> %s (%s via %s)\n", order[i], edge[order[i], k], why_name[order[i], edge[order[i], k]], why_hdr[order[i], edge[order[i], k]]
        for (i = 1; i <= nfiles; i++) if (order[i] ~ /\.c$/ && !ucolor[order[i]]) udfs(order[i])
        exit bad
    }' "${files[@]}" || found=1
fi

exit $found
