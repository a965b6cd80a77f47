# --- the node's environment file (privileged: a file under /etc) ---

# env_path PATH: where the file goes: PATH as root; without root (the dev stack), the user's
# own ${XDG_CONFIG_HOME:-~/.config}/modelshare/env, since /etc is root's. MODELSHARE_ENV_FILE
# puts it elsewhere (the tests: the machine's /etc stays as it was).
env_path() {
  if [ -n "${MODELSHARE_ENV_FILE-}" ]; then
    printf '%s\n' "$MODELSHARE_ENV_FILE"
  elif [ "$EUID" -eq 0 ]; then
    printf '%s\n' "$1"
  else
    printf '%s\n' "${XDG_CONFIG_HOME:-$HOME/.config}/modelshare/env"
  fi
}

# node_env PATH CONTENT: the file holds CONTENT, mode 0644.
node_env() {
  local path
  path=$(env_path "$1")
  [ "$path" = "$1" ] || [ -n "${MODELSHARE_ENV_FILE-}" ] || note "note: not root, so the environment file is $path (not $1)"
  ensure_system_dir "$(dirname -- "$path")"
  install_file "$path" 0644 "$2"
}

node_env_removed() {
  local path
  path=$(env_path "$1")
  remove_file "$path"
  remove_system_dir "$(dirname -- "$path")"
}
