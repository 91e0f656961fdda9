# Sourced by the tools that install packages: as_root CMD... runs CMD as root. As root that is
# CMD itself (a fresh Debian machine has no sudo); otherwise it goes through sudo, with
# DEBIAN_FRONTEND passed on by env(1), since sudo resets the environment. Without sudo, one line
# on stderr and status 1.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo env DEBIAN_FRONTEND="${DEBIAN_FRONTEND:-}" "$@"
  else
    echo "${0##*/}: '$*' needs root: run this as root (or install sudo)" >&2
    return 1
  fi
}
