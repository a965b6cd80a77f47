# --- category links ---
# Links are stored exactly as rendered (relative when the target is under the same root), and a
# link is "ours" only while readlink prints exactly that text.

# swap_in_link LINK TARGET: LINK becomes a symlink to TARGET in one rename. `ln -sf` over a link
# to a folder would create the new link inside the target instead.
swap_in_link() {
  local link=$1 target=$2 tmp="$1.modelshare-new"
  if [ -L "$tmp" ]; then
    rm -f -- "$tmp"
  elif [ -e "$tmp" ]; then
    refuse "$tmp is in the way and is not a link left by an interrupted modelshare run; move it away, then run again."
  fi
  ln -s -- "$target" "$tmp"
  mv -T -- "$tmp" "$link"
}

# same_entry A B: A and B are the same link text, or regular files with the same bytes.
same_entry() {
  if [ -L "$1" ] || [ -L "$2" ]; then
    [ -L "$1" ] && [ -L "$2" ] && [ "$(readlink -- "$1")" = "$(readlink -- "$2")" ]
  elif [ -f "$1" ] && [ -f "$2" ]; then
    cmp -s -- "$1" "$2"
  else
    return 1
  fi
}

# merge_into SRC DEST: move everything in folder SRC into folder DEST, then remove the emptied
# SRC. Refuses, before moving anything, if any name exists on both sides with other content.
# A file that exists in DEST with the same bytes is a duplicate: its copy in SRC is removed.
merge_into() {
  local src=$1 dest=$2 rel s d
  local -a entries=() conflicts=()
  mapfile -d '' entries < <(find "$src" -mindepth 1 -printf '%P\0')
  for rel in "${entries[@]}"; do
    s="$src/$rel" d="$dest/$rel"
    [ -e "$d" ] || [ -L "$d" ] || continue
    if [ -d "$s" ] && [ ! -L "$s" ]; then
      { [ -d "$d" ] && [ ! -L "$d" ]; } || conflicts+=("$rel")
    else
      same_entry "$s" "$d" || conflicts+=("$rel")
    fi
  done
  if [ "${#conflicts[@]}" -gt 0 ]; then
    printf 'modelshare: in %s and %s, these names hold different content:\n' "$src" "$dest" >&2
    printf '  %s\n' "${conflicts[@]}" >&2
    refuse "nothing was moved; rename or remove one of each pair, then run again."
  fi
  for rel in "${entries[@]}"; do
    s="$src/$rel" d="$dest/$rel"
    if [ -d "$s" ] && [ ! -L "$s" ]; then
      if [ ! -d "$d" ]; then
        mkdir -- "$d"
        chmod --reference="$s" -- "$d"
      fi
    elif [ -e "$d" ] || [ -L "$d" ]; then
      rm -f -- "$s"
      did "removed $s: the same bytes are already in $d"
    else
      mv -n -T -- "$s" "$d"
      if [ -e "$s" ] || [ -L "$s" ]; then refuse "could not move $s to $d."; fi
      did "moved $s to $d"
    fi
  done
  find "$src" -mindepth 1 -depth -type d -empty -delete
  rmdir -- "$src" || refuse "$src still holds entries that appeared while modelshare was moving it; run again."
}

# ensure_link LINK TARGET: LINK is a symlink whose text is TARGET (resolved from LINK's folder).
ensure_link() {
  local link=$1 target=$2 dir cur
  dir=$(dirname -- "$link")
  [ -d "$dir/$target" ] || refuse "$dir/$target is missing, so $link cannot point at it; converge the storage layout first."
  if [ -L "$link" ]; then
    cur=$(readlink -- "$link")
    if [ "$cur" != "$target" ]; then
      swap_in_link "$link" "$target"
      did "repointed $link: $cur -> $target"
    fi
  elif [ -d "$link" ]; then
    merge_into "$link" "$(realpath -e -- "$dir/$target")"
    swap_in_link "$link" "$target"
    did "replaced folder $link by a link to $target (its contents were moved there)"
  elif [ -e "$link" ]; then
    refuse "$link is a file where modelshare keeps a link to $target; move the file away, then run again."
  else
    swap_in_link "$link" "$target"
    did "linked $link -> $target"
  fi
  check_no_loop "$link" "$dir"
}

# check_no_loop LINK FOLDER: LINK resolves, and not to FOLDER or one of its ancestors (which
# would make FOLDER contain itself).
check_no_loop() {
  local resolved here
  resolved=$(realpath -e -- "$1") || refuse "$1 does not resolve (a dangling link or a symlink loop)."
  here=$(realpath -e -- "$2")
  case "$here/" in
    "$resolved"/*) refuse "$1 resolves to $resolved, which contains $2 itself: that would be a symlink loop." ;;
  esac
}

# prune_links FOLDER PREFIX NAME...: remove links in FOLDER that modelshare made (text exactly
# PREFIX/<their own name>) for categories that are no longer among NAME...
prune_links() {
  local folder=$1 prefix=$2 link name keep wanted
  shift 2
  [ -d "$folder" ] || return 0
  for link in "$folder"/*; do
    [ -L "$link" ] || continue
    name=${link##*/}
    [ "$(readlink -- "$link")" = "$prefix/$name" ] || continue
    keep=no
    for wanted in "$@"; do [ "$wanted" = "$name" ] && keep=yes; done
    if [ "$keep" = no ]; then
      rm -f -- "$link"
      did "removed link $link (its category is no longer configured)"
    fi
  done
}

# remove_link LINK TARGET: remove LINK only while it is still the link modelshare made.
remove_link() {
  local cur
  if [ -L "$1" ]; then
    cur=$(readlink -- "$1")
    if [ "$cur" = "$2" ]; then
      rm -f -- "$1"
      did "removed link $1"
      return 0
    fi
  fi
  if [ -e "$1" ] || [ -L "$1" ]; then
    note "left $1 alone: it is not the link modelshare made"
  fi
}

# remove_empty_dir PATH: remove PATH only if it is an empty real folder.
remove_empty_dir() {
  if [ -d "$1" ] && [ ! -L "$1" ] && [ -z "$(ls -A -- "$1")" ]; then
    rmdir -- "$1"
    did "removed empty folder $1"
  fi
}
