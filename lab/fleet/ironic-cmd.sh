# Sourced by start.sh and conductor.sh: runs one Ironic 21.4 service (ironic.cmd.MODULE) from the
# host's python3-ironic in place of this shell, with the given config files (later ones override).
#   ironic_cmd NAME MODULE CONF... [-- ARGS...]
ironic_cmd() {
  local name=$1 mod=$2; shift 2
  local args=()
  while (($#)) && [[ $1 != -- ]]; do args+=(--config-file "$1"); shift; done
  (($#)) && shift
  exec /usr/bin/python3 -c "import sys; sys.argv=['$name']+sys.argv[1:]; from ironic.cmd.$mod import main; main()" "${args[@]}" "$@"
}
