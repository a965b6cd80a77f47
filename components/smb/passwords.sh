# --- SMB passwords (privileged). The passwords arrive on the program's input (fd 3), one line
# each, never in the program text, a command line, an environment or the output. What was set
# is remembered as a salted SHA-256 of the password plus Samba's own passdb entry, in a folder
# only root can read (passdb itself holds the unsalted NT hash beside it): an unchanged
# password is not set again, and one changed behind modelshare's back (smbpasswd, a disabled
# account) is.
SMB_STATE=/var/lib/modelshare/smb-passwords

# smb_passwords NAME...: NAME's password is the next line of the input, in order; users whose
# password modelshare set but who are no longer listed lose it.
smb_passwords() {
  local name pw record
  if ! checking; then
    install -d -m 0700 -o root -g root /var/lib/modelshare "$SMB_STATE"
  fi
  for name in "$@"; do
    IFS= read -r -u 3 pw || refuse "the SMB password of $name did not arrive on the program's input; run again."
    smb_password "$name" "$pw"
  done
  for record in "$SMB_STATE"/*; do
    [ -f "$record" ] || continue
    name=${record##*/}
    smb_listed "$name" "$@" ||
      act "$name still has the SMB password modelshare set, but is no longer in smb.users" "removed $name's SMB password" smb_forget "$name"
  done
}

smb_listed() {
  local name=$1
  shift
  case " $* " in *" $name "*) return 0 ;; *) return 1 ;; esac
}

smb_fingerprint() { printf '%s\0%s' "$1" "$2" | sha256sum | cut -d' ' -f1; }

# smb_password NAME PASSWORD: set (and enabled) unless it is what modelshare set last.
smb_password() {
  local name=$1 pw=$2 salt="" print="" entry="" now=""
  if [ -f "$SMB_STATE/$name" ]; then
    { read -r salt && read -r print && IFS= read -r entry; } <"$SMB_STATE/$name" || true
  fi
  now=$(pdbedit -L -w -u "$name" 2>/dev/null) || now=""
  if [ -n "$salt" ] && [ -n "$now" ] && [ "$now" = "$entry" ] && [ "$(smb_fingerprint "$salt" "$pw")" = "$print" ]; then
    return 0
  fi
  act "the SMB password of $name is not the stack's (unset, changed or disabled)" "set the SMB password of $name" smb_set_password "$name" "$pw"
}

# smb_set_password NAME PASSWORD: smbpasswd reads it on stdin (printf is a builtin: no process
# ever holds it in its arguments).
smb_set_password() {
  local name=$1 pw=$2 salt
  printf '%s\n%s\n' "$pw" "$pw" | smbpasswd -s -a "$name" >/dev/null
  smbpasswd -e "$name" >/dev/null
  salt=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n%s\n%s\n' "$salt" "$(smb_fingerprint "$salt" "$pw")" "$(pdbedit -L -w -u "$name")" >"$SMB_STATE/.$name.new"
  mv -fT -- "$SMB_STATE/.$name.new" "$SMB_STATE/$name"
}

# smb_forget NAME: the SMB password modelshare set is gone (the Unix account stays).
smb_forget() {
  if pdbedit -L -u "$1" >/dev/null 2>&1; then smbpasswd -x "$1" >/dev/null; fi
  rm -f -- "$SMB_STATE/$1"
}

# smb_forget_all: destroy: every SMB password modelshare set is removed.
smb_forget_all() {
  local record
  for record in "$SMB_STATE"/*; do
    [ -f "$record" ] || continue
    act "${record##*/} still has the SMB password modelshare set" "removed the SMB password of ${record##*/}" smb_forget "${record##*/}"
  done
}
