# intake.py: moves the uploads SMB users leave in the staging folders into modelshare's store
# (storage.intake: staging), each one judged by the catalog's checks first, so the store only
# ever holds model files that are whole, well formed and free of code. A bad upload goes to the
# rejected folder beside a plain-English .reason.txt; a good one leaves staging once it is in.
#
# Run:  python3 -I intake.py run CONFIG          (root: the modelshare-intake service)
# CONFIG: {"owner": [uid, gid], "intake": [uid, gid], "stable_seconds": N, "grace_seconds": N,
#          "categories": [{"name": C, "staging": ABS, "store": ABS, "rejected": ABS}, ...]}
# It prints one line per upload it looked at for the journal:
#   `stored|same|held|rejected|changed|wait|failed CATEGORY/NAME [SHA256] [REASON]`
# (NAME escaped as catalog.py escapes, its spaces as \x20, so it stays one field), and a line for
# a category whose folders are missing. Exit 0 whatever it found; 2 when CONFIG is unusable.
# A run with nothing in staging costs one owner's step (the survey). A held upload is
# remembered (root's /run/modelshare-intake.<key>.held, beside the lock) and not copied again
# until it changes.
# Two runs of one CONFIG never overlap: each takes root's lock /run/modelshare-intake.KEY.lock
# (KEY: from CONFIG's path) and a run that finds it taken says "busy" and does nothing.
# The other verbs are the steps `run` starts, each as one of two accounts (names as the hex of
# their bytes: a name may not be UTF-8):
#   survey STABLE GRACE STAGING...  (owner: every folder's listing, one process a run)
#   list STAGING STABLE GRACE                                       (owner: one folder's)
#   send STAGING NAMEHEX DEV INO SIZE MTIME_NS                      (owner)
#   probe STORE                     (intake: the store's names and sizes)
#   receive STORE NAMEHEX SIZE MTIME_NS                             (intake)
#   settle STAGING REJECTED NAMEHEX DEV INO SIZE MTIME_NS RESULT REASONHEX   (owner)
#
# Safety: three accounts, each doing only what it may.
# - root orchestrates and nothing else: it never opens, stats or reads a name under the storage
#   tree. It starts every step with subprocess as the owner or the intake account (no extra
#   groups, cwd /, a fixed environment) and takes what an owner step prints as a lie until
#   proven otherwise (the owner can ptrace its own processes): bounded in size and time, parsed
#   strictly, every name and number checked; a malformed line is logged and skipped. The bytes
#   of an upload go from the owner's step to the intake's through a pipe root never reads.
# - The owner's steps touch only STAGING and REJECTED, which are the owner's anyway. No link is
#   followed: folders are opened O_DIRECTORY|O_NOFOLLOW, files O_NOFOLLOW|O_NONBLOCK relative to
#   their folder's fd, and only what lstat calls a regular file is opened (a FIFO never blocks).
# - The intake's step alone writes in STORE (the owner can read it, never write it). What it
#   puts there is its own copy, judged and hashed after copying: nothing the owner does before
#   or after can change the bytes judged. A name is only ever taken with link(2), which never
#   replaces a file already there.
# - Nothing from a file is unpickled, imported or executed (catalog.py only reads).
import sys

sys.dont_write_bytecode = True

import errno, fcntl, hashlib, importlib.util, json, os, secrets, selectors, stat, subprocess, time  # noqa: E402

THIS = os.path.abspath(__file__)


def load_catalog():
    """catalog.py, which sits beside this file (both root's 0644): its checks judge the uploads."""
    path = os.path.join(os.path.dirname(THIS), "catalog.py")
    spec = importlib.util.spec_from_file_location("catalog", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


catalog = load_catalog()

PART_PREFIX, PART_SUFFIX = ".modelshare-intake-", ".part"
REASON_SUFFIX = b".reason.txt"
CHUNK = 1 << 20
MAX_NAME = 255
MAX_REASON = 2000  # characters of a reason passed on; a longer one is cut
MAX_LIST_OUTPUT = 16 << 20  # bytes of a listing root reads; more is a lie
MAX_SMALL_OUTPUT = 64 << 10  # bytes root reads of any other step's stdout or stderr
MAX_CONFIG = 1 << 20
STEP_SECONDS = 600  # a step that takes longer is killed (an owner step may be held by ptrace)
MIN_RATE = 1 << 20  # bytes per second a copy is granted on top of STEP_SECONDS
MAX_RENAMES = 10_000  # NAME.1 ... in the rejected folder
EXIT_USAGE, EXIT_CHANGED, EXIT_MISSING = 2, 3, 4
PRE_STATUSES = ("ok", "wait", "incomplete", "invalid", "dangerous", "unknown", "skipped")
RESULTS = ("stored", "same", "held", "rejected", "changed")
ACTIONS = ("removed", "moved", "kept", "none")
HELD = "the store already has %s with other content; rename the upload or remove the store's file"
LOCK_DIR = "/run"
CHILD_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
HEX_DIGITS = frozenset("0123456789abcdef")


class Usage(Exception):
    """A step's arguments are not what `run` passes: exit 2 with this line on stderr."""


# ---- names, numbers and hex --------------------------------------------------------------------

def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def valid_name(name):
    """One plain entry of a folder, as bytes: no path, no hidden name (the parts are hidden)."""
    return (isinstance(name, bytes) and 0 < len(name) <= MAX_NAME and b"/" not in name
            and b"\0" not in name and name not in (b".", b"..") and not name.startswith(b"."))


def unhex(text):
    """Bytes of lowercase hex, strictly (bytes.fromhex would take spaces too)."""
    if not isinstance(text, str) or len(text) % 2 or not set(text) <= HEX_DIGITS:
        raise ValueError("not lowercase hex")
    return bytes.fromhex(text)


def name_of(text):
    name = unhex(text)
    if not valid_name(name):
        raise ValueError("not a plain file name")
    return name


def count_of(text):
    if not (text.isascii() and text.isdigit()):
        raise Usage("%r is not a count." % text)
    return int(text)


def seconds_of(text):
    try:
        value = float(text)
    except ValueError:
        raise Usage("%r is not a number of seconds." % text)
    if not 0 <= value < 1e12:
        raise Usage("%r is not a number of seconds." % text)
    return value


def step_name(text):
    try:
        return name_of(text)
    except ValueError:
        raise Usage("%r is not the hex of a plain file name." % text[:600])


def shown(name):
    """A name as one printable field: escaped as catalog.py escapes, spaces as \\x20."""
    return catalog.escape(name).replace(" ", "\\x20")


def words(text):
    """A reason as one printable line."""
    return catalog.escape(catalog.to_bytes(text))


# ---- files -------------------------------------------------------------------------------------

def open_dir(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def open_file(dir_fd, name):
    return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)


def lstat_at(dir_fd, name):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_same_file(st, seen):
    return st is not None and stat.S_ISREG(st.st_mode) and catalog.identity(st) == list(seen)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def unlink_quietly(dir_fd, name):
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def judge_fd(fd, size, name, with_hash):
    """catalog's verdict on the open file (status, reason, format), and its SHA-256 when asked
    and judged ok. A name without a model extension gets catalog's own "unknown" verdict."""
    ext = os.path.splitext(os.fsdecode(name))[1].lower()
    family = catalog.FORMATS.get(ext)
    entry = {"status": "ok", "reason": "", "format": family or "unknown", "sha256": None}
    if family is None:
        entry["status"] = "unknown"
        entry["reason"] = "not a model format modelshare checks (%s)." % (ext or "no extension")
        return entry
    catalog.judge(fd, size, family, entry)
    if with_hash and entry["status"] == "ok":
        catalog.hash_into(fd, size, entry)
        if entry["status"] == "ok" and entry["sha256"] is None:
            entry["status"], entry["reason"] = "skipped", "it ended before its size while it was hashed."
    return entry


def say(text):
    """One line on stderr: why a step did what it did (root logs it, escaped)."""
    print("intake.py: %s" % text, file=sys.stderr)


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=True, sort_keys=True) + "\n")
    sys.stdout.flush()


# ---- list (owner) ------------------------------------------------------------------------------

def cmd_list(staging, stable, grace):
    """One JSON line per settled regular file in STAGING, pre-judged (no hashing: cheap)."""
    try:
        dir_fd = open_dir(staging)
    except FileNotFoundError:
        say("the staging folder %s is missing." % words(staging))
        return EXIT_MISSING
    except OSError as e:
        say("the staging folder %s cannot be opened without following a link (%s)." % (words(staging), e.strerror))
        return EXIT_USAGE
    try:
        now = time.time()
        for name in sorted(os.fsencode(n) for n in os.listdir(dir_fd)):
            if name.startswith(b"."):
                continue  # hidden: a client's temp file, or not an upload
            entry = list_one(dir_fd, name, now, stable, grace)
            if entry is not None:
                emit(entry)
    finally:
        os.close(dir_fd)
    return 0


def cmd_survey(stable, grace, folders):
    """`list` over every staging folder in one step (one process a run, not one per category):
    each line carries its folder's index; a folder that is missing or cannot be opened gives
    one line {"folder": i, "missing": true|false, "error": why} instead."""
    now = time.time()
    for i, staging in enumerate(folders):
        try:
            dir_fd = open_dir(staging)
        except OSError as e:
            missing = isinstance(e, FileNotFoundError)
            emit({"folder": i, "missing": missing, "error": e.strerror or str(e)})
            continue
        try:
            for name in sorted(os.fsencode(n) for n in os.listdir(dir_fd)):
                if not name.startswith(b"."):
                    entry = list_one(dir_fd, name, now, stable, grace)
                    if entry is not None:
                        emit(dict(entry, folder=i))
        finally:
            os.close(dir_fd)
    return 0


def list_one(dir_fd, name, now, stable, grace):
    """The listing line of one name, or None for anything not a settled regular file."""
    st = lstat_at(dir_fd, name)
    if st is None or not stat.S_ISREG(st.st_mode) or now - st.st_mtime < stable:
        return None  # links, FIFOs, folders and young files are never opened
    try:
        fd = open_file(dir_fd, name)
    except OSError as e:
        say("%s could not be opened (%s): left alone." % (shown(name), e.strerror))
        return None
    try:
        seen = catalog.identity(st)
        if not is_same_file(os.fstat(fd), seen):
            return None  # replaced since the lstat: the next run looks again
        entry = judge_fd(fd, st.st_size, name, with_hash=False)
        if not is_same_file(os.fstat(fd), seen):
            return None  # written while it was judged: still being uploaded
    finally:
        os.close(fd)
    status, reason = entry["status"], entry["reason"]
    if status == "incomplete" and now - st.st_mtime < grace:
        status, reason = "wait", "incomplete: %s (an upload may pause: left alone for %gs after its last change)" % (reason, grace)
    dev, ino, size, mtime_ns = seen
    return {"name": name.hex(), "dev": dev, "ino": ino, "size": size, "mtime_ns": mtime_ns,
            "status": status, "reason": reason[:MAX_REASON]}


# ---- send (owner) ------------------------------------------------------------------------------

def cmd_send(staging, name, seen):
    """Exactly SIZE bytes of the listed file on stdout, or fewer, or one more: the receiver
    takes any count but SIZE as "changed", so a change seen only after the last byte still
    stops the copy (the receiver reads to the end before it keeps anything)."""
    try:
        dir_fd = open_dir(staging)
        try:
            fd = open_file(dir_fd, name)
        finally:
            os.close(dir_fd)
    except OSError as e:
        say("%s could not be opened (%s)." % (shown(name), e.strerror))
        return EXIT_CHANGED
    try:
        if not is_same_file(os.fstat(fd), seen):
            say("%s is not the file listed any more." % shown(name))
            return EXIT_CHANGED
        size = seen[2]
        sent = send_bytes(fd, size)
        if sent < size:
            say("%s ended after %d of its %d bytes." % (shown(name), sent, size))
            return EXIT_CHANGED
        if not is_same_file(os.fstat(fd), seen):
            os.write(1, b"\0")  # one byte too many: the receiver drops its copy
            say("%s changed while it was sent." % shown(name))
            return EXIT_CHANGED
        return 0
    except BrokenPipeError:
        say("the receiver stopped reading %s." % shown(name))
        return EXIT_CHANGED
    finally:
        os.close(fd)


def send_bytes(fd, size):
    """Up to SIZE bytes of fd to stdout; returns how many there were."""
    at = 0
    try:
        while at < size:
            n = os.sendfile(1, fd, at, min(size - at, 64 * CHUNK))
            if n == 0:
                return at
            at += n
        return at
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS) or at:
            raise
    while at < size:  # stdout takes no sendfile (not a pipe or socket): read and write
        chunk = os.pread(fd, min(size - at, CHUNK), at)
        if not chunk:
            break
        write_all(1, chunk)
        at += len(chunk)
    return at


# ---- probe and receive (intake) ------------------------------------------------------------------

def cmd_probe(store):
    """Exit 0 when STORE is a folder (not a link), 4 when it is missing. Prints a JSON line
    {"name", "size"} per visible name there (size null when it is not a regular file), so root
    holds an upload whose name is taken by a file of another size without copying it again
    every run (a multi-GB upload would otherwise be copied and hashed each time)."""
    try:
        dir_fd = open_dir(store)
    except FileNotFoundError:
        return EXIT_MISSING
    except OSError as e:
        say("the store folder %s cannot be opened without following a link (%s)." % (words(store), e.strerror))
        return EXIT_USAGE
    try:
        for name in sorted(os.fsencode(n) for n in os.listdir(dir_fd)):
            st = None if name.startswith(b".") else lstat_at(dir_fd, name)
            if st is not None:
                emit({"name": name.hex(), "size": st.st_size if stat.S_ISREG(st.st_mode) else None})
    finally:
        os.close(dir_fd)
    return 0


def cmd_receive(store, name, size, mtime_ns):
    """Copies stdin into a part in STORE, judges the copy, and gives it NAME when it is ok;
    prints {"result", "reason", "sha256"}. The part never outlives the step."""
    try:
        dir_fd = open_dir(store)
    except OSError as e:
        say("the store folder %s cannot be opened without following a link (%s)." % (words(store), e.strerror))
        return EXIT_USAGE
    try:
        remove_stale_parts(dir_fd)
        part = (PART_PREFIX + secrets.token_hex(8) + PART_SUFFIX).encode("ascii")
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(part, flags, 0o600, dir_fd=dir_fd)
        try:
            result = take(dir_fd, fd, part, name, size, mtime_ns)
        finally:
            os.close(fd)
            unlink_quietly(dir_fd, part)
    finally:
        os.close(dir_fd)
    emit(result)
    return 0


def remove_stale_parts(dir_fd):
    """Parts a crashed run left: only the intake writes STORE and runs never overlap, so every
    part there is a dead one."""
    for name in os.listdir(dir_fd):
        if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError as e:
                say("a stale part %s could not be removed (%s)." % (words(name), e.strerror))


def result(kind, reason="", sha256=None):
    return {"result": kind, "reason": reason, "sha256": sha256}


def take(dir_fd, fd, part, name, size, mtime_ns):
    got = receive_bytes(fd, size)
    if got != size:
        more = "more" if got > size else "only %d" % got
        return result("changed", "%s bytes came, not the %d listed: it changed while it was copied; the next run looks again." % (more, size))
    os.fsync(fd)
    entry = judge_fd(fd, size, name, with_hash=True)
    if entry["status"] != "ok":
        return result("rejected", "%s: %s" % (entry["status"], entry["reason"]))
    sha = entry["sha256"]
    os.fchmod(fd, 0o644)
    os.utime(fd, ns=(time.time_ns(), mtime_ns))  # the upload's date, not the copy's
    os.fsync(fd)
    try:
        os.link(part, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        return compare_existing(dir_fd, name, size, sha)
    os.fsync(dir_fd)
    return result("stored", entry["reason"], sha)


def receive_bytes(fd, size):
    """stdin into fd until its end; returns the count, stopping as soon as it passes SIZE."""
    got = 0
    while True:
        chunk = os.read(0, CHUNK)
        if not chunk:
            return got
        got += len(chunk)
        if got > size:
            return got
        write_all(fd, chunk)


def compare_existing(dir_fd, name, size, sha):
    """The store has NAME already: "same" when it holds these very bytes, else "held"."""
    held = result("held", HELD % catalog.escape(name), sha)
    try:
        fd = open_file(dir_fd, name)
    except OSError:
        return held  # a link or something unopenable: never followed, never replaced
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return held
        entry = {"status": "ok", "reason": "", "sha256": None}
        catalog.hash_into(fd, size, entry)
    finally:
        os.close(fd)
    return result("same", "", sha) if entry["sha256"] == sha else held


# ---- settle (owner) ----------------------------------------------------------------------------

def cmd_settle(staging, rejected, name, seen, outcome, reason):
    """After the copy: a stored (or same) upload leaves staging; a rejected one moves to
    REJECTED with a reason file. Only while it is still the very file listed."""
    try:
        dir_fd = open_dir(staging)
    except OSError as e:
        return settled("kept", note="the staging folder cannot be opened (%s)" % e.strerror)
    try:
        if outcome not in ("stored", "same", "rejected"):
            return settled("none")
        if not is_same_file(lstat_at(dir_fd, name), seen):
            return settled("kept", note="it changed after it was looked at: left in the staging folder for the next run")
        if outcome in ("stored", "same"):
            os.unlink(name, dir_fd=dir_fd)
            return settled("removed")
        return move_to_rejected(dir_fd, staging, rejected, name, seen, reason)
    finally:
        os.close(dir_fd)


def settled(action, to=None, note=""):
    emit({"action": action, "to": None if to is None else to.hex(), "note": note})
    return 0


def move_to_rejected(dir_fd, staging, rejected, name, seen, reason):
    try:
        rej_fd = open_dir(rejected)
    except OSError as e:
        return settled("kept", note="the rejected folder cannot be opened (%s): left in the staging folder" % e.strerror)
    try:
        final = link_free_name(dir_fd, rej_fd, name)
        if isinstance(final, str):
            return settled("kept", note=final)
        st = lstat_at(rej_fd, final)
        if st is None or [st.st_dev, st.st_ino] != list(seen[:2]):
            # The staged name was swapped between the check and the link: the new name is ours.
            if st is not None:
                unlink_quietly(rej_fd, final)
            return settled("kept", note="it changed while it was moved: left in the staging folder for the next run")
        if is_same_file(lstat_at(dir_fd, name), seen):
            os.unlink(name, dir_fd=dir_fd)
        note = write_reason(rej_fd, final, staging, name, seen, reason)
        return settled("moved", to=final, note=note)
    finally:
        os.close(rej_fd)


def link_free_name(dir_fd, rej_fd, name):
    """Links the staged NAME into REJECTED as NAME, NAME.1, NAME.2 ... (the first free one whose
    reason file is free too; link(2) never replaces); returns that name, or why not (a str)."""
    for i in range(MAX_RENAMES):
        candidate = fitted(name, "" if i == 0 else ".%d" % i)
        if lstat_at(rej_fd, candidate + REASON_SUFFIX) is not None:
            continue
        try:
            os.link(name, candidate, src_dir_fd=dir_fd, dst_dir_fd=rej_fd, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno == errno.EXDEV:
                return "the rejected folder is on another file system than the staging folder: left in the staging folder"
            return "it could not be moved to the rejected folder (%s): left in the staging folder" % e.strerror
        return candidate
    return "the rejected folder has no free name for it: left in the staging folder"


def fitted(name, suffix):
    """NAME+SUFFIX, its stem shortened (extension kept) so that its reason file's name fits
    in 255 bytes."""
    room = MAX_NAME - len(REASON_SUFFIX)
    whole = name + suffix.encode("ascii")
    if len(whole) <= room:
        return whole
    stem, ext = os.path.splitext(name)
    if len(ext) > 32:
        stem, ext = name, b""
    keep = room - len(ext) - len(suffix)
    while 0 < keep < len(stem) and 0x80 <= stem[keep] < 0xC0:
        keep -= 1  # never cut a UTF-8 character in two
    return stem[:keep] + ext + suffix.encode("ascii")


def utc(seconds):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def reason_text(staging, name, final, seen, reason):
    category = os.path.basename(staging.rstrip("/")) or staging
    why = words(reason).strip() or "it did not pass the checks."
    if not why.endswith("."):
        why += "."
    return ("The file \"%s\", uploaded to the %s folder (last changed %s), was not taken into the "
            "model store on %s. The reason: %s It was moved here as \"%s\". Nothing was copied into "
            "the model store; fix the file and upload it again.\n") % (
        catalog.escape(name), words(category), utc(seen[3] / 1e9), utc(time.time()), why,
        catalog.escape(final))


def write_reason(rej_fd, final, staging, name, seen, reason):
    """FINAL.reason.txt beside it: a new file (O_EXCL|O_NOFOLLOW, 0644) renamed over the name,
    so a planted link there is replaced, never written through. Returns a note ("" when done)."""
    tmp = (PART_PREFIX + secrets.token_hex(8) + ".tmp").encode("ascii")
    data = reason_text(staging, name, final, seen, reason).encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=rej_fd)
        try:
            os.fchmod(fd, 0o644)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final + REASON_SUFFIX, src_dir_fd=rej_fd, dst_dir_fd=rej_fd)
    except OSError as e:
        unlink_quietly(rej_fd, tmp)
        return "its reason file could not be written (%s)" % e.strerror
    return ""


# ---- run (root) --------------------------------------------------------------------------------

def parse_config(data):
    """The config's dict, checked; ValueError says what is wrong."""
    conf = json.loads(data.decode("utf-8"))
    if not isinstance(conf, dict):
        raise ValueError("not a JSON object")
    for who in ("owner", "intake"):
        ids = conf.get(who)
        if not (isinstance(ids, list) and len(ids) == 2 and all(is_count(i) and i != 0 for i in ids)):
            raise ValueError("%s must be [uid, gid], neither 0" % who)
    if conf["owner"][0] == conf["intake"][0]:
        raise ValueError("the owner and the intake must be different uids")
    for key in ("stable_seconds", "grace_seconds"):
        v = conf.get(key)
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e9):
            raise ValueError("%s must be a number of seconds" % key)
    cats = conf.get("categories")
    if not isinstance(cats, list):
        raise ValueError("categories must be a list")
    for c in cats:
        if not (isinstance(c, dict) and isinstance(c.get("name"), str)
                and valid_name(os.fsencode(c["name"]))):
            raise ValueError("a category without a plain name")
        for key in ("staging", "store", "rejected"):
            p = c.get(key)
            if not (isinstance(p, str) and p.startswith("/") and "\0" not in p):
                raise ValueError("category %s: %s must be an absolute path" % (words(c["name"]), key))
    return conf


def journal(text):
    sys.stdout.buffer.write((text + "\n").encode("utf-8", "surrogateescape"))
    sys.stdout.flush()


def cmd_run(config_path):
    if os.geteuid() != 0:
        say("run is root's: it starts its steps as the owner and the intake.")
        return EXIT_USAGE
    try:
        fd = os.open(config_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        say("the config %s cannot be opened (%s)." % (words(config_path), e.strerror))
        return EXIT_USAGE
    try:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CONFIG:
                raise ValueError("not a regular file of at most %d bytes" % MAX_CONFIG)
            conf = parse_config(os.read(fd, MAX_CONFIG + 1))
        except (OSError, ValueError, RecursionError) as e:
            say("the config %s is unusable: %s." % (words(config_path), words(str(e))))
            return EXIT_USAGE
    finally:
        os.close(fd)
    try:
        lock_fd = take_lock(config_path)
    except BlockingIOError:
        journal("busy: another run is still going; this one does nothing")
        return 0
    except OSError as e:
        say("the lock %s cannot be taken (%s)." % (words(lock_path(config_path)), e.strerror))
        return EXIT_USAGE
    try:
        held = {"before": read_held(config_path), "now": set()}
        cats = conf["categories"]
        survey = step(conf["owner"], ["survey", repr(conf["stable_seconds"]), repr(conf["grace_seconds"]), *[c["staging"] for c in cats]],
                      MAX_LIST_OUTPUT)
        if survey.code != 0 or survey.out is None:
            journal("failed: the staging folders could not be listed (%s)" % survey.why())
            return 0
        listed, bad = parse_survey(survey.out, len(cats))
        if bad:
            journal("failed: %d malformed listing lines skipped" % bad)
        for i, cat in enumerate(cats):
            run_category(conf, cat, listed[i], held)
        write_held(config_path, held["now"])
        return 0
    finally:
        os.close(lock_fd)  # releases the lock


# A held upload (its name is the store's, with other content) stays in staging until someone
# acts; without a memory every run would copy and hash it again, gigabytes every half minute.
# The memory is root's, in /run beside the lock: which uploads were held, by category, name and
# the identity listed (device, inode, size, mtime). Only an unchanged one is skipped; anything
# unreadable in it just means copying once more.

def held_key(cat, item):
    return (cat["name"], item["name"].hex(), item["dev"], item["ino"], item["size"], item["mtime_ns"])


def held_path(config_path):
    return lock_path(config_path)[: -len(".lock")] + ".held"


def read_held(config_path):
    try:
        fd = os.open(held_path(config_path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return set()
    try:
        rows = json.loads(os.read(fd, MAX_LIST_OUTPUT).decode("ascii"))
        return {tuple(r) for r in rows if isinstance(r, list) and len(r) == 6}
    except (OSError, ValueError, RecursionError, TypeError):
        return set()
    finally:
        os.close(fd)


def write_held(config_path, keys):
    path = held_path(config_path)
    tmp = "%s.%s" % (path, secrets.token_hex(4))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, json.dumps(sorted(keys)).encode("ascii"))
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        unlink_quietly_path(tmp)
        journal("failed to remember the held uploads (%s): they are copied again next run" % e.strerror)


def unlink_quietly_path(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def lock_path(config_path):
    """Root's lock for runs of this config. Not the config itself: it is world-readable, and
    anyone who can open a file can flock it and so stop every run; /run is root's alone."""
    key = hashlib.sha256(os.fsencode(os.path.abspath(config_path))).hexdigest()[:16]
    return os.path.join(LOCK_DIR, "modelshare-intake.%s.lock" % key)


def take_lock(config_path):
    """An fd holding the lock (never waited for: a run that finds it taken does nothing)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(lock_path(config_path), flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Step:
    """What a finished step left: its exit code, stdout (None when over its bound), stderr."""

    def __init__(self, code, out, err, timed_out):
        self.code, self.out, self.err, self.timed_out = code, out, err, timed_out

    def why(self):
        if self.timed_out:
            return "it took over its time and was killed"
        text = (self.err or b"").decode("utf-8", "replace").strip().splitlines()
        return "exit %s%s" % (self.code, (": " + words(text[-1])[:300]) if text else "")


def spawn(ids, args, stdin, stdout):
    uid, gid = ids
    return subprocess.Popen([sys.executable, "-I", THIS, *args], user=uid, group=gid, extra_groups=[],
                            cwd="/", env=CHILD_ENV, umask=0o022, stdin=stdin, stdout=stdout,
                            stderr=subprocess.PIPE, close_fds=True)


def drain(streams, procs, seconds):
    """Reads every (pipe, limit) of `streams` to its end while the processes run, at most
    `limit` bytes of each kept (None when it printed more), within `seconds`; then waits for
    the processes (killed when the time is over). Returns (outputs, timed_out)."""
    deadline = time.monotonic() + seconds
    sel = selectors.DefaultSelector()
    bufs = [bytearray() for _ in streams]
    over = set()
    for i, (pipe, _) in enumerate(streams):
        sel.register(pipe, selectors.EVENT_READ, i)
    timed_out = False
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif len(bufs[key.data]) + len(chunk) > streams[key.data][1]:
                    over.add(key.data)  # read on, so the step never blocks, but keep nothing
                else:
                    bufs[key.data] += chunk
    finally:
        sel.close()
    for p in procs:
        try:
            p.wait(timeout=0 if timed_out else max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            p.kill()
            p.wait()
    for pipe, _ in streams:
        pipe.close()
    return [None if i in over else bytes(b) for i, b in enumerate(bufs)], timed_out


def step(ids, args, limit=MAX_SMALL_OUTPUT):
    p = spawn(ids, args, subprocess.DEVNULL, subprocess.PIPE)
    (out, err), timed_out = drain([(p.stdout, limit), (p.stderr, MAX_SMALL_OUTPUT)], [p], STEP_SECONDS)
    return Step(p.returncode, out, err, timed_out)


def run_category(conf, cat, listed, held):
    label = os.fsencode(cat["name"])
    if listed["missing"] is not None:
        if listed["missing"]:
            journal("missing %s: the staging folder %s is missing" % (shown(label), words(cat["staging"])))
        else:
            journal("failed %s: the staging folder could not be listed (%s)" % (shown(label), words(listed["error"])))
        return
    items = listed["items"]
    if not items:
        return  # the common case, every half minute: nothing waits, the store is not asked
    probe = step(conf["intake"], ["probe", cat["store"]], MAX_LIST_OUTPUT)
    if probe.code == EXIT_MISSING:
        journal("missing %s: the store folder %s is missing; its uploads stay in staging" % (shown(label), words(cat["store"])))
        return
    taken = parse_store(probe.out) if probe.code == 0 else None
    if taken is None:
        journal("failed %s: the store folder could not be checked (%s)" % (shown(label), probe.why()))
        return
    for item in items:
        try:
            handle(conf, cat, label, item, taken, held)
        except OSError as e:  # a step that could not even start: this upload waits, the run goes on
            journal("failed %s/%s %s" % (shown(label), shown(item["name"]), words(e.strerror or str(e))))


def parse_store(out):
    """{name: size or None} of the store's names, from the intake's probe; None if malformed."""
    if out is None:
        return None
    taken = {}
    try:
        for line in out.split(b"\n"):
            if line:
                o = json.loads(line.decode("ascii"))
                if not (isinstance(o, dict) and set(o) == {"name", "size"} and (o["size"] is None or is_count(o["size"]))):
                    return None
                taken[name_of(o["name"])] = o["size"]
    except (ValueError, RecursionError):
        return None
    return taken


LISTING_KEYS = {"name", "dev", "ino", "size", "mtime_ns", "status", "reason"}


def parse_survey(out, count):
    """The owner's survey, every line checked: per folder index {"missing": None|bool, "error",
    "items"}; returns (that list, how many lines were malformed)."""
    listed = [{"missing": None, "error": "", "items": []} for _ in range(count)]
    by_folder = [bytearray() for _ in range(count)]
    bad = 0
    for line in out.split(b"\n"):
        if not line:
            continue
        try:
            o = json.loads(line.decode("ascii"))
            i = o.pop("folder") if isinstance(o, dict) else None
            if not (is_count(i) and i < count):
                raise ValueError("no folder")
        except (ValueError, RecursionError, KeyError):
            bad += 1
            continue
        if set(o) == {"missing", "error"} and isinstance(o["missing"], bool) and isinstance(o["error"], str):
            listed[i]["missing"], listed[i]["error"] = o["missing"], o["error"][:MAX_REASON]
        else:
            by_folder[i] += json.dumps(o).encode("ascii") + b"\n"
    for i in range(count):
        items, more = parse_listing(bytes(by_folder[i]))
        listed[i]["items"], bad = items, bad + more
    return listed, bad


def parse_listing(out):
    """The owner's listing, every line checked; returns (items, how many lines were malformed)."""
    items, seen, bad = [], set(), 0
    for line in out.split(b"\n"):
        if not line:
            continue
        try:
            o = json.loads(line.decode("ascii"))
            if not (isinstance(o, dict) and set(o) == LISTING_KEYS):
                raise ValueError("other keys")
            o["name"] = name_of(o["name"])
            if not (all(is_count(o[k]) for k in ("dev", "ino", "size", "mtime_ns"))
                    and o["status"] in PRE_STATUSES and isinstance(o["reason"], str)):
                raise ValueError("bad fields")
        except (ValueError, RecursionError, TypeError):
            bad += 1
            continue
        if o["name"] in seen:
            bad += 1
            continue
        seen.add(o["name"])
        o["reason"] = o["reason"][:MAX_REASON]
        items.append(o)
    return items, bad


def handle(conf, cat, label, item, taken, held):
    name, status = item["name"], item["status"]
    where = "%s/%s" % (shown(label), shown(name))
    key = held_key(cat, item)
    if status == "ok" and name in taken and key in held["before"]:
        held["now"].add(key)  # held last run and not touched since: not copied again
        return
    if status == "wait":
        journal("wait %s %s" % (where, words(item["reason"])))
        return
    if status == "skipped":  # the owner's step could not read it: nothing to judge, try again later
        journal("failed %s %s" % (where, words(item["reason"])))
        return
    if status == "ok" and name in taken and taken[name] != item["size"]:
        outcome = result("held", HELD % catalog.escape(name))  # never replaced: no need to copy it
    elif status == "ok":
        outcome = copy_over(conf, cat, item)
        if isinstance(outcome, str):
            return journal("failed %s %s" % (where, outcome))
    else:
        outcome = result("rejected", "%s: %s" % (status, item["reason"]))
    kind, reason, sha = outcome["result"], outcome["reason"], outcome["sha256"]
    if kind == "held":
        held["now"].add(key)
    note = settle(conf, cat, item, kind, reason)
    fields = [kind, where] + ([sha] if sha else []) + ([words(reason)] if reason else []) + ([note] if note else [])
    journal(" ".join(fields))


def ids_args(item):
    return [str(item[k]) for k in ("dev", "ino", "size", "mtime_ns")]


def copy_over(conf, cat, item):
    """Owner's send | intake's receive, through a pipe root never reads. Returns receive's
    result, or a str saying why there is none."""
    name_hex, size = item["name"].hex(), item["size"]
    r, w = os.pipe()
    try:
        sender = spawn(conf["owner"], ["send", cat["staging"], name_hex, *ids_args(item)], subprocess.DEVNULL, w)
        try:
            receiver = spawn(conf["intake"], ["receive", cat["store"], name_hex, str(size), str(item["mtime_ns"])],
                             r, subprocess.PIPE)
        except OSError:
            sender.kill()
            sender.wait()
            sender.stderr.close()
            raise
    finally:
        os.close(r)
        os.close(w)
    streams = [(receiver.stdout, MAX_SMALL_OUTPUT), (receiver.stderr, MAX_SMALL_OUTPUT),
               (sender.stderr, MAX_SMALL_OUTPUT)]
    (out, err, send_err), timed_out = drain(streams, [sender, receiver], STEP_SECONDS + size / MIN_RATE)
    if timed_out:
        return "the copy took over its time and was killed; it stays in staging"
    got = parse_result(out)
    if receiver.returncode != 0 or got is None:
        return "the store's side of the copy failed (%s); it stays in staging" % Step(receiver.returncode, out, err, False).why()
    if got["result"] == "changed" and send_err:
        got["reason"] += " (the sender said: %s)" % Step(sender.returncode, b"", send_err, False).why()
    return got


def parse_result(out):
    if not out:
        return None
    try:
        o = json.loads(out.decode("ascii").strip())
    except (ValueError, RecursionError):
        return None
    sha = o.get("sha256") if isinstance(o, dict) else None
    if not (isinstance(o, dict) and set(o) == {"result", "reason", "sha256"} and o["result"] in RESULTS
            and isinstance(o["reason"], str) and (sha is None or catalog.is_sha(sha))):
        return None
    return o


def settle(conf, cat, item, kind, reason):
    """The owner's settle step; returns a note for the journal line ("" when none)."""
    if kind not in ("stored", "same", "rejected"):
        return ""  # held and changed uploads stay as they are
    args = ["settle", cat["staging"], cat["rejected"], item["name"].hex(), *ids_args(item), kind,
            catalog.to_bytes(reason[:MAX_REASON]).hex()]
    s = step(conf["owner"], args)
    try:
        o = json.loads((s.out or b"").decode("ascii").strip())
        if not (s.code == 0 and isinstance(o, dict) and set(o) == {"action", "to", "note"} and o["action"] in ACTIONS
                and isinstance(o["note"], str) and (o["to"] is None or valid_name(unhex(o["to"])))):
            raise ValueError("malformed")
    except (ValueError, RecursionError):
        return "(settling it failed: %s)" % s.why()
    parts = []
    if o["action"] == "moved" and o["to"]:
        parts.append("moved to the rejected folder as %s" % shown(unhex(o["to"])))
    elif o["action"] == "kept":
        parts.append("kept in staging")
    if o["note"]:
        parts.append(words(o["note"][:MAX_REASON]))
    return "(%s)" % "; ".join(parts) if parts else ""


# ---- the command line --------------------------------------------------------------------------

USAGE = "usage: intake.py run CONFIG | survey|list|send|probe|receive|settle ... (see the header)"
ARITY = {"run": 1, "list": 3, "send": 6, "probe": 1, "receive": 4, "settle": 9}


def dispatch(verb, a):
    if verb == "run":
        return cmd_run(a[0])
    if verb == "list":
        return cmd_list(a[0], seconds_of(a[1]), seconds_of(a[2]))
    if verb == "survey":
        return cmd_survey(seconds_of(a[0]), seconds_of(a[1]), a[2:])
    if verb == "send":
        return cmd_send(a[0], step_name(a[1]), [count_of(x) for x in a[2:6]])
    if verb == "probe":
        return cmd_probe(a[0])
    if verb == "receive":
        return cmd_receive(a[0], step_name(a[1]), count_of(a[2]), count_of(a[3]))
    outcome = a[7]
    if outcome not in RESULTS:
        raise Usage("%r is not a result." % outcome)
    try:
        reason = unhex(a[8]).decode("utf-8", "surrogateescape")
    except ValueError:
        raise Usage("REASONHEX is not hex.")
    return cmd_settle(a[0], a[1], step_name(a[2]), [count_of(x) for x in a[3:7]], outcome, reason)


def main(argv):
    variadic = argv[:1] == ["survey"] and len(argv) >= 3  # survey STABLE GRACE STAGING...
    if not variadic and (not argv or argv[0] not in ARITY or len(argv) != ARITY[argv[0]] + 1):
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    try:
        return dispatch(argv[0], [os.fsdecode(x) if isinstance(x, bytes) else x for x in argv[1:]])
    except Usage as e:
        say(str(e))
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
