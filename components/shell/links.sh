# --- category links ---
# Links are stored exactly as rendered (relative when the target is under the same root), and a
# link is "ours" only while readlink prints exactly that text. Links belong to the storage
# tree's skeleton: root makes them in a links folder that is root's, so no one else can swap
# one; only the merge of a real folder found where a link belongs runs as the owner.

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

# hand_over FOLDER UID GID NAME... (privileged): a real folder FOLDER/NAME, where a category
# link belongs, is about to be merged into the store by the owner. Whatever in it the owner
# does not own (a sudo script's uploads, say) is given to UID:GID first, with chown -R -P, which
# never follows a link, from inside FOLDER. A hard link is the file itself, wherever else it
# stands (a planted link to /etc/shadow, where fs.protected_hardlinks is off): a file the owner
# does not own with more than one name is refused, and on such a host nothing is handed over.
hand_over() {
  local folder=$1 uid=$2 gid=$3 name shared
  shift 3
  if [ ! -d "$folder" ] || [ -L "$folder" ]; then return 0; fi
  enter_dir "$folder"
  for name in "$@"; do
    if [ -L "$name" ] || [ ! -d "$name" ]; then continue; fi
    if [ -n "$(find -P "./$name" \( ! -user "$uid" -o ! -group "$gid" \) -print -quit)" ]; then
      shared=$(find -P "./$name" ! -type d -links +1 \( ! -user "$uid" -o ! -group "$gid" \) -printf '%P\n' -quit)
      [ -z "$shared" ] || refuse "$folder/$name/$shared has other hard links, so it may be a file elsewhere on this system too; modelshare will not hand it to $uid:$gid. Move it out of $folder/$name, then run again."
      [ "$(cat /proc/sys/fs/protected_hardlinks 2>/dev/null)" = 1 ] || checking ||
        refuse "$folder/$name holds entries that do not belong to $uid:$gid, and this host lets users hard-link files they do not own (fs.protected_hardlinks is not 1), so handing them over could hand over a system file; set fs.protected_hardlinks=1, or give them to $uid:$gid yourself, then run again."
      act "$folder/$name holds entries that do not belong to $uid:$gid" \
        "handed $folder/$name, and everything in it, to $uid:$gid, so that the owner can merge it" \
        chown -R -P -h -- "$uid:$gid" "./$name"
    fi
  done
  cd /
}

# merge_into SRC DEST [KEEP...]: move everything in folder SRC into the real folder DEST, then
# remove the emptied SRC (with KEEP, globs of top-level names, those stay, and so does SRC; "."
# keeps SRC alone). merge_conflicts compares first and refuses, moving nothing. Then one entry
# at a time, from inside its destination folder (entered and checked by enter_dir, so a folder
# swapped for a link stops the run): folders by merge_dir, everything else by merge_entry.
# Whoever runs it (the owner, the ollama user, a checkout's owner) may share DEST with another
# uid that can rename names in it at any moment: nothing here creates a name and then acts on
# it through that name again (see merge_private).
merge_into() {
  local src=$1 dest=$2 rel s d parent here="" across=no
  shift 2
  merge_conflicts "$src" "$dest" "$@"
  [ "$(stat -c %d -- "$src")" = "$(stat -c %d -- "$dest")" ] || across=yes
  for rel in "${merge_entries[@]}"; do
    s="$src/$rel" d="$dest/$rel"
    case $rel in */*) parent="$dest/${rel%/*}" ;; *) parent=$dest ;; esac
    if [ "$here" != "$parent" ]; then
      enter_dir "$parent"
      here=$parent
      merge_tidy "$here"
    fi
    if [ -d "$s" ] && [ ! -L "$s" ]; then
      merge_dir "$s" "${rel##*/}" "$d"
    else
      merge_entry "$s" "${rel##*/}" "$d" "$across"
    fi
  done
  cd /
  find "$src" -mindepth 1 -depth -type d -empty -delete
  [ "$#" -eq 0 ] || return 0 # the folder stays, with what it keeps
  rmdir -- "$src" || refuse "$src still holds entries that appeared while modelshare was moving it; run again."
}

# merge_conflicts SRC DEST [KEEP...]: the dry comparison, which changes nothing: lists SRC's
# entries (but the top-level KEEP globs) into merge_entries, and refuses, listing them, if any
# name found on both sides holds other content. A caller that must stop a service to merge runs
# it before stopping anything.
merge_entries=()
merge_conflicts() {
  local src=$1 dest=$2 keep rel s d
  local -a conflicts=() prune=()
  shift 2
  for keep in "$@"; do prune+=(-path "./$keep" -prune -o); done
  mapfile -d '' merge_entries < <(cd -P -- "$src" && find -P . -mindepth 1 "${prune[@]}" -printf '%P\0')
  for rel in "${merge_entries[@]}"; do
    s="$src/$rel" d="$dest/$rel"
    if [ ! -L "$s" ] && [ ! -d "$s" ] && [ ! -f "$s" ]; then
      conflicts+=("$rel (neither a file, a folder nor a link)")
      continue
    fi
    [ -e "$d" ] || [ -L "$d" ] || continue
    if [ -d "$s" ] && [ ! -L "$s" ]; then
      { [ -d "$d" ] && [ ! -L "$d" ]; } || conflicts+=("$rel")
    elif [ -f "$s" ] && [ ! -L "$s" ] && [ ! -r "$s" ]; then
      conflicts+=("$rel (uid $EUID cannot read it to compare)")
    else
      same_entry "$s" "$d" || conflicts+=("$rel")
    fi
  done
  if [ "${#conflicts[@]}" -gt 0 ]; then
    complain "in $src and $dest, these names hold different content:"
    # shellcheck disable=SC2154 # escaped: set by escape_line (prelude.sh)
    for rel in "${conflicts[@]}"; do escape_line "$rel"; printf '  %s\n' "$escaped" >&2; done
    refuse "nothing was moved; rename or remove one of each pair, then run again."
  fi
}

# merge_private NAME HERE: make NAME in HERE (the folder we stand in) as a folder only this uid
# may enter (mkdir never follows a link, never reuses a name), then stand in it and prove it is
# the one made: the kernel puts us at HERE/NAME, ours, closed to others, empty. Whatever is
# then done inside happens there, even if someone renames NAME or plants a link in its place.
merge_private() {
  local mode
  mkdir -m 0700 -- "$1" 2>/dev/null || refuse "$2/$1 is in the way and is not left by an interrupted modelshare run; move it away, then run again."
  cd -P -- "$1" 2>/dev/null || changed_meanwhile "$2/$1"
  require_here "$2/$1"
  mode=$(stat -c '%u %a' .)
  if [ "${mode% *}" != "$EUID" ] || [ $((8#${mode#* } & 8#077)) -ne 0 ] || [ -n "$(ls -A)" ]; then
    cd /
    changed_meanwhile "$2/$1"
  fi
}

# merge_leave HERE: from the private folder back into HERE, proven again (someone may have
# moved the private folder elsewhere: then `..` is not HERE and the run stops).
merge_leave() {
  cd -P .. 2>/dev/null || changed_meanwhile "$1"
  require_here "$1"
}

# merge_tidy HERE (in HERE): what an interrupted run of ours left: a private copy folder (its
# half-copied file goes), or an older version's .modelshare-partial file or link (unlinked:
# never followed). A folder of someone else's under that name stops the run.
merge_tidy() {
  local tmp=.modelshare-partial
  if [ ! -e "$tmp" ] && [ ! -L "$tmp" ]; then return 0; fi
  if [ -L "$tmp" ] || [ ! -d "$tmp" ]; then
    rm -f -- "$tmp"
    return 0
  fi
  [ "$(stat -c %u -- "$tmp")" = "$EUID" ] || refuse "$1/$tmp is in the way and is not left by an interrupted modelshare run; move it away, then run again."
  cd -P -- "$tmp" 2>/dev/null || changed_meanwhile "$1/$tmp"
  require_here "$1/$tmp"
  [ "$(stat -c %u .)" = "$EUID" ] || { cd /; changed_meanwhile "$1/$tmp"; }
  rm -f -- partial
  merge_leave "$1"
  rmdir -- "$tmp" 2>/dev/null || refuse "$1/$tmp is in the way and is not left by an interrupted modelshare run; move it away, then run again."
}

# merge_dir SRC NAME DEST (in DEST's parent): DEST is a real folder. A new one is made private
# under a temporary name, given SRC's mode (plus the owner's rwx, which merging needs) from
# inside, and renamed into place, so it never stands under its name with another mode, whenever
# the run is killed, and the chmod can only ever reach the folder made.
merge_dir() {
  local s=$1 name=$2 d=$3 here=${3%/*} tmp=.modelshare-folder mode
  if [ -d "$name" ] && [ ! -L "$name" ]; then return 0; fi
  if [ -e "$name" ] || [ -L "$name" ]; then
    refuse "$d appeared, and not as a folder, while modelshare was merging $s into it; nothing of it was moved. Move one of them away, then run again."
  fi
  if [ -d "$tmp" ] && [ ! -L "$tmp" ]; then
    rmdir -- "$tmp" 2>/dev/null || refuse "$here/$tmp is in the way and is not an empty folder left by an interrupted modelshare run; move it away, then run again."
  elif [ -e "$tmp" ] || [ -L "$tmp" ]; then
    refuse "$here/$tmp is in the way and is not a folder left by an interrupted modelshare run; move it away, then run again."
  fi
  mode=$(stat -c %a -- "$s")
  merge_private "$tmp" "$here"
  chmod -- "$(printf '0%04o' $((8#$mode | 8#700)))" .
  merge_leave "$here"
  mv -n -T -- "$tmp" "$name" 2>/dev/null || changed_meanwhile "$here/$tmp"
  if [ -e "$tmp" ] || [ -L "$tmp" ]; then # the name appeared in the meantime
    rmdir -- "$tmp" 2>/dev/null || refuse "$here/$tmp is in the way and is not an empty folder left by an interrupted modelshare run; move it away, then run again."
    merge_dir "$@"
    return 0
  fi
  did "created folder $d (merging $s)"
}

# merge_entry SRC NAME DEST ACROSS (in DEST's folder): move a file or link without ever
# overwriting (mv -n renames with RENAME_NOREPLACE). A name that exists already is compared
# again right before the source copy goes (drop_duplicate). ACROSS=yes (another filesystem,
# where mv would copy under the final name): copy into a private folder (merge_private: cp
# creates its file there, where no one else can plant a link), compare, rename it into place
# from there (`..` is where we stand, never a name looked up again), then remove the source,
# so each file is whole under its name or still in the source.
merge_entry() {
  local s=$1 name=$2 d=$3 across=$4 here=${3%/*} tmp=.modelshare-partial moved=yes
  if [ -e "$name" ] || [ -L "$name" ]; then
    drop_duplicate "$s" "$name" "$d"
    return 0
  fi
  if [ "$across" = yes ]; then
    merge_private "$tmp" "$here"
    cp -P --preserve=mode,timestamps -- "$s" partial || refuse "could not copy $s to $here; it is still where it was."
    same_entry "$s" partial || refuse "the copy of $s in $here differs from it; it is still where it was."
    mv -n -T -- partial "../$name" 2>/dev/null || changed_meanwhile "$here/$tmp/partial"
    if [ -e partial ] || [ -L partial ]; then
      moved=no
      rm -f -- partial
    fi
    merge_leave "$here"
    rmdir -- "$tmp" 2>/dev/null || true # gone or swapped: nothing of ours is in it
    if [ "$moved" = no ]; then
      drop_duplicate "$s" "$name" "$d"
      return 0
    fi
    rm -f -- "$s"
  else
    mv -n -T -- "$s" "$name" || refuse "could not move $s to $d; it is still where it was."
    if [ -e "$s" ] || [ -L "$s" ]; then
      [ -e "$name" ] || [ -L "$name" ] || refuse "could not move $s to $d; it is still where it was."
      drop_duplicate "$s" "$name" "$d"
      return 0
    fi
  fi
  did "moved $s to $d"
}

# drop_duplicate SRC NAME DEST: NAME (DEST, in the folder we are in) exists. Compare again now,
# right before the source copy goes: other content stops the run, both kept.
drop_duplicate() {
  if same_entry "$1" "$2"; then
    rm -f -- "$1"
    did "removed $1: the same bytes are already in $3"
  else
    refuse "$3 exists with other content than $1 (it appeared while modelshare was merging); both are kept. Rename or remove one of them, then run again."
  fi
}

# ensure_link LINK TEXT CATEGORY: LINK is a symlink whose text is TEXT, resolving to the real
# folder CATEGORY (inside the storage root) and nowhere else.
ensure_link() {
  local link=$1 text=$2 category=$3 cur=""
  require_no_link "$category"
  if [ ! -d "$category" ]; then
    checking || refuse "$category is missing, so $link cannot point at it; converge the storage layout first."
    drift "$category is missing, so $link cannot point at it"
    return 0
  fi
  if [ -L "$link" ]; then
    cur=$(readlink -- "$link")
    if [ "$cur" != "$text" ]; then
      act "$link points at $cur, not $text" "repointed $link: $cur -> $text" swap_in_link "$link" "$text"
    fi
  elif [ -d "$link" ]; then
    act "$link is a folder (holding $(find -P "$link" -mindepth 1 -printf . | wc -c) entries) where a link to $text belongs; converging merges it into $category" \
      "replaced folder $link by a link to $text (its contents were moved there)" merge_and_link "$link" "$category" "$text"
  elif [ -e "$link" ]; then
    refuse "$link is a file where modelshare keeps a link to $text; move the file away, then run again."
  else
    act "link $link -> $text is missing" "linked $link -> $text" swap_in_link "$link" "$text"
  fi
  # Checking, a missing or wrong link was reported above: there is nothing to resolve yet.
  if checking && [ "$cur" != "$text" ]; then return 0; fi
  # The same file (device and inode, links followed) as the real folder: no loop, no detour.
  [ "$link" -ef "$category" ] || refuse "$link does not resolve to $category (a link along the way leads elsewhere, or it loops); replace it by the real folder, then run again."
}

# merge_and_link FOLDER CATEGORY TEXT: the owner moves what the real FOLDER holds into CATEGORY
# (merge_into; the emptied folder stays, for its parent is root's), then root removes the empty
# folder and puts the link in its place.
merge_and_link() {
  as_owner merge_into "$1" "$2" .
  rmdir -- "$1" 2>/dev/null || refuse "$1 still holds entries that appeared while modelshare was moving it into $2; run again."
  swap_in_link "$1" "$3"
}

# prune_links FOLDER PREFIX NAME...: remove links in FOLDER that modelshare made (text exactly
# PREFIX/<their own name>) for categories that are no longer among NAME...
prune_links() {
  local folder=$1 prefix=$2 link name wanted
  shift 2
  [ -d "$folder" ] || return 0
  for link in "$folder"/*; do
    [ -L "$link" ] || continue
    name=${link##*/}
    for wanted in "$@"; do [ "$wanted" != "$name" ] || continue 2; done
    [ "$(readlink -- "$link")" = "$prefix/$name" ] || continue
    act "link $link is left from a category that is no longer configured" \
      "removed link $link (its category is no longer configured)" rm -f -- "$link"
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
