#!/usr/bin/env bash
# parse_options.sh: command-line option parser for recipe scripts.
#
# SOURCE it (do not run it) after the script has set its option defaults:
#
#   stage=1
#   nj=4
#   use_gpu=false
#   help_message="Usage: $0 [options] <arg>"
#   . egs2/gram/utils/parse_options.sh
#   # "$@" now holds only the positional arguments
#
# Rules:
#   --foo_bar VALUE, --foo-bar VALUE, --foo_bar=VALUE
#       set foo_bar=VALUE; the variable foo_bar must already be defined
#       (otherwise: "ERROR: unknown option" and exit 1).  Dashes in the
#       option name become underscores.  The value is assigned verbatim
#       (no eval).  A variable whose current value is true/false only
#       accepts true/false.
#   --config FILE
#       source FILE (bash "name=value" lines) before any other option is
#       applied, so command-line options override it.  May be repeated.
#   --help, -h
#       print $help_message (if set) and exit 0.
#   --
#       end of options; everything after stays positional.
#   The first argument that does not start with "--" ends option parsing;
#   it and everything after it stay in "$@".
#
# It manipulates the caller's positional parameters with `shift`, so it must
# be sourced WITHOUT arguments (". parse_options.sh", not ". parse_options.sh
# "$@""). It does not change the caller's shell options and only uses
# variables prefixed with __po_, which are unset at the end.

__po_prog=${0##*/}

# Pass 1: find --config files among the leading options (no shifting here).
__po_configs=()
__po_expect=
__po_is_config=false
for __po_arg in "$@"; do
  if [ -n "${__po_expect}" ]; then
    if ${__po_is_config}; then
      __po_configs+=("${__po_arg}")
    fi
    __po_expect=
    __po_is_config=false
    continue
  fi
  case "${__po_arg}" in
    --) break ;;
    --help | -h) ;;
    --config=*) __po_configs+=("${__po_arg#--config=}") ;;
    --config) __po_expect=yes; __po_is_config=true ;;
    --*=*) ;;
    --?*) __po_expect=yes ;;
    *) break ;;
  esac
done
# A missing value is reported by pass 2.
for __po_arg in ${__po_configs[@]+"${__po_configs[@]}"}; do
  if [ ! -f "${__po_arg}" ] || [ ! -r "${__po_arg}" ]; then
    echo "${__po_prog}: ERROR: config file '${__po_arg}' (from --config) does not exist or is not readable" >&2
    exit 1
  fi
  # shellcheck disable=SC1090
  . "${__po_arg}"
done

# Pass 2: assign the options, shifting them off the caller's "$@".
while [ "$#" -gt 0 ]; do
  case "$1" in
    --)
      shift
      break
      ;;
    --help | -h)
      if [ -n "${help_message:-}" ]; then
        printf '%s\n' "${help_message}"
      else
        echo "${__po_prog}: no help message available (options are the variables set before parse_options.sh)"
      fi
      exit 0
      ;;
    --?*)
      __po_opt=$1
      case "$1" in
        --*=*)
          __po_name=${1%%=*}
          __po_value=${1#*=}
          shift
          ;;
        *)
          if [ "$#" -lt 2 ]; then
            echo "${__po_prog}: ERROR: option ${__po_opt} requires a value" >&2
            exit 1
          fi
          __po_name=$1
          __po_value=$2
          shift 2
          ;;
      esac
      __po_name=${__po_name#--}
      __po_name=${__po_name//-/_}
      # --config files were already sourced in pass 1.
      if [ "${__po_name}" = config ]; then
        continue
      fi
      if ! [[ "${__po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__po_name+x}" ]; then
        echo "${__po_prog}: ERROR: unknown option ${__po_opt} (no variable '${__po_name}' is defined in ${__po_prog})" >&2
        exit 1
      fi
      case "${!__po_name}" in
        true | false)
          case "${__po_value}" in
            true | false) ;;
            *)
              echo "${__po_prog}: ERROR: option ${__po_opt} expects true or false, got '${__po_value}'" >&2
              exit 1
              ;;
          esac
          ;;
      esac
      if ! printf -v "${__po_name}" '%s' "${__po_value}"; then
        echo "${__po_prog}: ERROR: cannot set option ${__po_opt}" >&2
        exit 1
      fi
      ;;
    *)
      break
      ;;
  esac
done

unset __po_prog __po_configs __po_expect __po_is_config __po_arg __po_opt __po_name __po_value
# Leave a zero status so that a caller running under `set -e` continues.
true
