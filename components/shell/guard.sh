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

# enter_dir PATH: cd into the real folder PATH, then require_here PATH. From then on the shell
# holds the folder: whatever is done to "." happens to it, even if a name along PATH is swapped
# later.
enter_dir() {
  cd -P -- "$1" 2>/dev/null || changed_meanwhile "$1"
  require_here "$1"
}

# require_here PATH: the kernel says the shell stands in PATH itself (so no component of the
# way in was a link). It asks getcwd, through the external `pwd -P`: bash's builtin answers from
# $PWD while that still resolves, which a folder flipped between itself and a link can fool.
require_here() {
  if [ "$(env pwd -P)" != "$1" ]; then
    cd /
    changed_meanwhile "$1"
  fi
}

# changed_meanwhile PATH: a folder appeared, vanished or turned into something else between two
# looks (someone working in the tree at the same time): stop with a sentence, naming a link if
# that is what is there now.
changed_meanwhile() {
  require_no_link "$1"
  refuse "$1 changed while modelshare was working on it; run again."
}

# chmod_inside PATH MODE: chmod the real folder PATH from inside it.
chmod_inside() {
  enter_dir "$1"
  chmod -- "$2" . 2>/dev/null || refuse "could not change the mode of $1, which belongs to $(stat -c %u:%g .) (it was swapped while modelshare was working); run again."
  cd /
}
