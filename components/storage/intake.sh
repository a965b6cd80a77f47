# --- the store's own account (storage.intake: staging) ---
# With staging, the store's category folders are the intake account's (0755): the intake
# service copies what it vouched for into them as that account, and nobody who writes as the
# storage owner (SMB users, containers, custom nodes) can add, change or replace a model there.

INTAKE_ACCOUNT=modelshare-intake

# ensure_intake_account (privileged): the system account exists: no login, no home, a group of
# its own. Sets intake_uid and intake_gid (empty when checking and it is not there yet).
# shellcheck disable=SC2154 # owner_uid: set by the program
ensure_intake_account() {
  if ! id -u -- "$INTAKE_ACCOUNT" >/dev/null 2>&1; then
    act "the system account $INTAKE_ACCOUNT is missing" "made the system account $INTAKE_ACCOUNT (only it writes the model store)" \
      useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment "modelshare intake" -- "$INTAKE_ACCOUNT"
  fi
  intake_uid="" intake_gid=""
  if id -u -- "$INTAKE_ACCOUNT" >/dev/null 2>&1; then
    intake_uid=$(id -u -- "$INTAKE_ACCOUNT") intake_gid=$(id -g -- "$INTAKE_ACCOUNT")
  fi
  if [ -n "$intake_uid" ] && { [ "$intake_uid" = 0 ] || [ "$intake_uid" = "$owner_uid" ] || [ "$intake_gid" = 0 ]; }; then
    refuse "the account $INTAKE_ACCOUNT has uid $intake_uid (gid $intake_gid), which is root's or the storage owner's; the store it writes would then be theirs too. Give it a uid and group of its own (userdel $INTAKE_ACCOUNT lets modelshare make it again), then run again."
  fi
}

# ensure_intake_dirs [PATH MODE STAGING]... (privileged, after ensure_intake_account and the
# rest of the layout): each store category folder is a real folder of the intake account's. One
# of another holder (the store was written directly until now) is taken over only while it is
# empty: files the owner holds in it would stay the owner's to change after the intake vouched
# for them. Were files put in while it changed hands, it goes back to the storage owner.
# shellcheck disable=SC2154 # intake_uid, intake_gid, owner_uid, owner_gid: set above and by the program
ensure_intake_dirs() {
  local path mode staging before
  while [ "$#" -ge 3 ]; do
    path=$1 mode=$2 staging=$3
    shift 3
    if [ -z "$intake_uid" ]; then # checking, and the account is not there yet: said above
      ensure_held_dir "$path" "" "" "$mode"
      continue
    fi
    before=""
    if [ -d "$path" ] && [ ! -L "$path" ]; then before=$(stat -c %u -- "$path"); fi
    if [ -n "$before" ] && [ "$before" != "$intake_uid" ] && intake_dir_used "$path"; then
      refuse "storage.intake is staging, so the model store's folder $path must be the account $INTAKE_ACCOUNT's, but it belongs to uid $before and holds files (it was written directly until now). modelshare does not take over files their writer could still change after the intake vouched for them: move them into $staging (as the storage owner: mv -n -- $path/* $staging/), and the intake will check each and bring it back; or keep storage.intake: direct. Then run again."
    fi
    ensure_held_dir "$path" "$intake_uid" "$intake_gid" "$mode"
    if [ -n "$before" ] && [ "$before" != "$intake_uid" ] && ! checking && intake_dir_used "$path"; then
      ensure_held_dir "$path" "$owner_uid" "$owner_gid" "$mode"
      refuse "files appeared in $path while it was handed to $INTAKE_ACCOUNT; it was given back to the storage owner. Move them into $staging, then run again."
    fi
  done
}

# intake_dir_used PATH: PATH holds any entry (never followed).
intake_dir_used() {
  [ -n "$(find -P "$1" -mindepth 1 -maxdepth 1 -print -quit)" ]
}
