# Sourced by the set-up scripts: installs the Debian packages named in "$@" that
# are missing (as root through apt-get; otherwise says what to install and fails).
# Each argument is "command:package", or "/path/to/file:package".
ensure_packages() {
  local need=() pair probe
  for pair in "$@"; do
    probe=${pair%%:*}
    case $probe in
      /*) [ -e "$probe" ] || need+=("${pair#*:}") ;;
      *) command -v "$probe" >/dev/null || need+=("${pair#*:}") ;;
    esac
  done
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need[*]}; install them first: sudo apt-get install -y ${need[*]}" >&2
    return 1
  fi
  echo "installing ${need[*]} ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}
