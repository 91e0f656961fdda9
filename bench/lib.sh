# Shared helpers for bench/*.sh: wall-clock timing of whole commands and medians.
# Uses bash's $EPOCHREALTIME, so no extra process is timed with the command.

# time_runs N CMD... -> prints N durations in milliseconds (one per line).
time_runs() {
  local n=$1; shift
  local i t0 t1
  for ((i = 0; i < n; i++)); do
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'
  done
}
# median: reads numbers on stdin, prints the median.
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
