# --- never follow a link where a real folder is expected ---
# require_no_link PATH: no component of the absolute PATH (/a, /a/b, … PATH) is a symbolic
# link; components that do not exist yet are fine (they will be created as folders).
require_no_link() {
  local rest=${1#/} at=""
  while [ -n "$rest" ]; do
    at="$at/${rest%%/*}"
    case $rest in */*) rest=${rest#*/} ;; *) rest="" ;; esac
    if [ -L "$at" ]; then
      refuse "$at is a symbolic link (to $(readlink -- "$at")), where modelshare expects a real folder; it never follows a link there, since one planted inside the storage tree could lead anywhere. Put the real folder there, or point storage.root at the real path, then run again."
    fi
    [ -e "$at" ] || return 0
  done
}

# enter_dir PATH: cd into the real folder PATH. `pwd -P` asks the kernel where the shell now
# is, which must be PATH itself, so no component was a link. From then on the shell holds the
# folder: whatever is done to "." happens to it, even if a name along PATH is swapped later.
enter_dir() {
  cd -P -- "$1" 2>/dev/null || refuse "could not enter the folder $1."
  if [ "$(pwd -P)" != "$1" ]; then
    cd /
    require_no_link "$1"
    refuse "$1 changed while modelshare was entering it; run again."
  fi
}
