# --- SMB passwords (privileged). The passwords arrive on the program's input (fd 3), one line
# each, never in the program text, a command line, an environment or the output. What was set
# is remembered as a salted SHA-256 of the password plus Samba's own passdb entry, in a folder
# only root can read (passdb itself holds the unsalted NT hash beside it): an unchanged
# password is not set again, and one changed behind modelshare's back (smbpasswd, a disabled
# account) is. The record's fourth line says whether modelshare created the Samba account or
# adopted one that was there before (smb.users[].adopt): only a created one is ever deleted.
# A record without that line (written before modelshare kept it) counts as created.
SMB_STATE=/var/lib/modelshare/smb-passwords

# smb_passwords NAME MODE KEY [NAME MODE KEY]...: NAME's password is the next line of the input,
# in order; MODE is adopt or create, KEY the config key that adopts. Users whose password
# modelshare set but who are no longer listed lose it (a created account) or are let go (an
# adopted one keeps its account).
smb_passwords() {
  local name pw record
  local -a names=()
  if ! checking; then
    install -d -m 0700 -o root -g root /var/lib/modelshare "$SMB_STATE"
  fi
  while [ "$#" -ge 3 ]; do
    IFS= read -r -u 3 pw || refuse "the SMB password of $1 did not arrive on the program's input; run again."
    smb_password "$1" "$pw" "$2" "$3"
    names+=("$1")
    shift 3
  done
  for record in "$SMB_STATE"/*; do
    [ -f "$record" ] || continue
    name=${record##*/}
    smb_listed "$name" "${names[@]}" || smb_let_go "$name" "is no longer in smb.users"
  done
}

smb_listed() {
  local name=$1
  shift
  case " $* " in *" $name "*) return 0 ;; *) return 1 ;; esac
}

smb_fingerprint() { printf '%s\0%s' "$1" "$2" | sha256sum | cut -d' ' -f1; }

# smb_origin NAME: created or adopted, from NAME's record (created for a record without it).
smb_origin() {
  local origin=""
  { read -r && read -r && read -r && read -r origin; } <"$SMB_STATE/$1" || true
  if [ "$origin" = adopted ]; then printf 'adopted'; else printf 'created'; fi
}

# smb_adoptions NAME MODE KEY [NAME MODE KEY]...: a Samba account passdb holds and modelshare has
# no record of was made by someone else: it stops the run unless KEY adopts it (MODE adopt).
# The share program asks first, so such an account never reaches modelshare's share with the
# password someone else gave it; the passwords program asks again before it sets one.
smb_adoptions() {
  while [ "$#" -ge 3 ]; do
    if [ ! -f "$SMB_STATE/$1" ] && [ "$2" != adopt ] && pdbedit -L -u "$1" >/dev/null 2>&1; then
      refuse "the Samba account $1 existed before modelshare (pdbedit -L lists it), and modelshare would replace its password; set $3: true to let modelshare manage it (destroy then leaves the account), or give the SMB user another name, then run again."
    fi
    shift 3
  done
}

# smb_password NAME PASSWORD MODE KEY: set (and enabled) unless it is what modelshare set last.
# A Samba account modelshare has no record of, which passdb already holds, is adopted (when KEY
# allows it: smb_adoptions).
smb_password() {
  local name=$1 pw=$2 mode=$3 key=$4 salt="" print="" entry="" now="" origin
  now=$(pdbedit -L -w -u "$name" 2>/dev/null) || now=""
  if [ -f "$SMB_STATE/$name" ]; then
    { read -r salt && read -r print && IFS= read -r entry; } <"$SMB_STATE/$name" || true
    origin=$(smb_origin "$name")
  elif [ -n "$now" ]; then
    smb_adoptions "$name" "$mode" "$key"
    origin=adopted
  else
    origin=created
  fi
  if [ -n "$salt" ] && [ -n "$now" ] && [ "$now" = "$entry" ] && [ "$(smb_fingerprint "$salt" "$pw")" = "$print" ]; then
    return 0
  fi
  act "the SMB password of $name is not the stack's (unset, changed or disabled)" "set the SMB password of $name" smb_set_password "$name" "$pw" "$origin"
}

# smb_set_password NAME PASSWORD ORIGIN: smbpasswd reads it on stdin (printf is a builtin: no
# process ever holds it in its arguments).
smb_set_password() {
  local name=$1 pw=$2 salt
  printf '%s\n%s\n' "$pw" "$pw" | smbpasswd -s -a "$name" >/dev/null
  smbpasswd -e "$name" >/dev/null
  salt=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n%s\n%s\n%s\n' "$salt" "$(smb_fingerprint "$salt" "$pw")" "$(pdbedit -L -w -u "$name")" "$3" >"$SMB_STATE/.$name.new"
  mv -fT -- "$SMB_STATE/.$name.new" "$SMB_STATE/$name"
}

# smb_let_go NAME WHY: modelshare stops managing NAME: a Samba account it created is deleted (the
# Unix account stays); an adopted one keeps its account and password, only the record goes.
smb_let_go() {
  if [ "$(smb_origin "$1")" = adopted ]; then
    act "$1 $2, an adopted Samba account modelshare still manages" "let go of the adopted Samba account $1 (the account and its password stay)" rm -f -- "$SMB_STATE/$1"
  else
    act "$1 $2 and still has the SMB password modelshare set" "removed the SMB password of $1" smb_forget "$1"
  fi
}

# smb_forget NAME: the Samba account modelshare created is gone (the Unix account stays).
smb_forget() {
  if pdbedit -L -u "$1" >/dev/null 2>&1; then smbpasswd -x "$1" >/dev/null; fi
  rm -f -- "$SMB_STATE/$1"
}

# smb_forget_all: destroy: every Samba account modelshare created is removed; adopted ones stay.
smb_forget_all() {
  local record
  for record in "$SMB_STATE"/*; do
    [ -f "$record" ] || continue
    smb_let_go "${record##*/}" "is in a destroyed stack"
  done
}
