# fetch.py: puts the models a site declares into the store, once, each verified by its SHA-256.
#
# Run:  python3 -I fetch.py [--frame FRAME] [--state DIR] fetch|check STORE JSON_LIST
# JSON_LIST: [{"category": C, "file": F, "url": U, "sha256": S}, ...]; each model's place is
# STORE/C/F. It runs as the storage owner (never root): everything it opens an SMB user or a
# container may have planted.
#
# fetch: a model already at its place is compared (present: nothing done; different: left as it
#   is, never replaced). A missing one is downloaded into STORE/C/.modelshare-fetch-F.part
#   (resumed with a Range request when a part is there), hashed whole, and only when the hash is
#   the declared one linked to its name (link(2) never replaces a name that appeared meanwhile),
#   then the part goes. A download with other bytes is deleted (refused). Every model is tried;
#   exit 1 when any was failed, refused or different, else 0.
# check: no network: present / missing / different / partial (a part is there) per model; exit 0.
# Exit 2 on a usage error or when STORE cannot be opened.
#
# Output: with --frame, one row per model:
#   `FRAME report: declared STATUS SIZE SHA PATH REASON` (SHA: the file's, hex, or -; PATH
#   C/F escaped with spaces as \x20; REASON escaped, spaces kept, - when empty); without, one
#   readable line per model. Fetching, what went wrong is also said on stderr, one line per
#   model, and a closing line naming them all (the caller's refusal).
#
# Safety: STORE is opened O_DIRECTORY|O_NOFOLLOW, each category relative to it the same way (a
# link for a category is never followed), each file relative to its category's fd with
# O_NOFOLLOW|O_NONBLOCK, and only what fstat calls a regular file is read. Nothing is ever
# written through a name that exists already except the part, which must be a regular file.
# The state (--state DIR/declared.json: each model's dev, ino, size, mtime_ns and SHA-256, so an
# unchanged file is not hashed again) is replaced atomically, 0600, never through a link.
import sys

sys.dont_write_bytecode = True

import errno, hashlib, http.client, json, os, secrets, stat, urllib.error, urllib.request  # noqa: E402

TIMEOUT = 60  # seconds a socket may stay silent
CHUNK = 1 << 20
PREFIX, SUFFIX = ".modelshare-fetch-", ".part"
STATE = "declared.json"
MAX_STATE_BYTES = 64 << 20
STATUSES = ("present", "fetched", "missing", "partial", "different", "refused", "failed")
BAD = ("different", "refused", "failed")
USAGE = "usage: fetch.py [--frame FRAME] [--state DIR] fetch|check STORE JSON_LIST"


class Usage(Exception):
    pass


class Failed(Exception):
    """This model cannot be handled now: its row says why; the others go on."""


# ---- escaping (as catalog.py and the shell's escape_line) ------------------------------------

BIDI = frozenset([0x200E, 0x200F, *range(0x2028, 0x202F), *range(0x2066, 0x206A)])
SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(text):
    out = []
    for ch in text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape"):
        c = ord(ch)
        if ch in SHORT_ESCAPES:
            out.append(SHORT_ESCAPES[ch])
        elif 0xDC80 <= c <= 0xDCFF:
            out.append("\\x%02x" % (c - 0xDC00))
        elif c < 0x20 or 0x7F <= c <= 0x9F or c in BIDI:
            out.append("".join("\\x%02x" % b for b in ch.encode("utf-8", "surrogatepass")))
        else:
            out.append(ch)
    return "".join(out)


# ---- files -----------------------------------------------------------------------------------

def plain_name(name):
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\0" not in name and "\n" not in name and len(name.encode("utf-8", "surrogateescape")) <= 255)


def part_name(file):
    """The part beside the model; a name too long for that is replaced by a digest of it."""
    name = PREFIX + file + SUFFIX
    if len(name.encode("utf-8", "surrogateescape")) <= 255:
        return name
    return PREFIX + hashlib.sha256(file.encode("utf-8", "surrogateescape")).hexdigest() + SUFFIX


def open_dir(name, dir_fd=None):
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def lstat_at(dir_fd, name):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def identity(st):
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def sha_of_fd(fd):
    h = hashlib.sha256()
    at = 0
    while True:
        chunk = os.pread(fd, CHUNK, at)
        if not chunk:
            return h.hexdigest(), at
        h.update(chunk)
        at += len(chunk)


def kind_of(mode):
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def judge_existing(cat_fd, file, path, st, model, state):
    """(status, size, sha, reason) of the file at a model's place: present or different."""
    if not stat.S_ISREG(st.st_mode):
        return ("different", st.st_size, None,
                "%s is there (never followed or replaced): remove it to have the model fetched" % kind_of(st.st_mode))
    old = state["records"].get(path)
    if old is not None and identity(st) == [old.get(k) for k in ("dev", "ino", "size", "mtime_ns")]:
        sha = old.get("sha256")
    else:
        try:
            fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=cat_fd)
        except OSError as e:
            raise Failed("could not be opened (%s)" % e.strerror)
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or identity(fst) != identity(st):
                raise Failed("changed while it was being looked at; run again")
            sha, _ = sha_of_fd(fd)
        except OSError as e:
            raise Failed("could not be read (%s)" % e.strerror)
        finally:
            os.close(fd)
        state["records"][path] = dict(zip(("dev", "ino", "size", "mtime_ns"), identity(st)), sha256=sha)
        state["dirty"] = True
    if sha == model["sha256"]:
        return ("present", st.st_size, sha, "")
    return ("different", st.st_size, sha,
            "a file with SHA-256 %s is there, not the declared %s; it is never replaced: remove or rename it to have the model fetched" % (sha, model["sha256"]))


# ---- downloading -----------------------------------------------------------------------------

def download(cat_fd, part, url):
    """The part completed from `url`: resumed with Range when it holds bytes (appended on 206,
    started over on 200). Returns the part's fd (open, at its full length)."""
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o664, dir_fd=cat_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Failed("its partial download %s is %s, not a file: remove it" % (escape(part), kind_of(st.st_mode)))
        have = st.st_size
        req = urllib.request.Request(url, headers={"User-Agent": "modelshare-fetch/1"})
        if have:
            req.add_header("Range", "bytes=%d-" % have)
        try:
            resp = urllib.request.urlopen(req, timeout=TIMEOUT)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:
                return fd  # the part is whole already: the hash decides
            raise Failed("the server answered %d %s" % (e.code, e.reason))
        with resp:
            if resp.status == 206:
                if not (resp.headers.get("Content-Range") or "").startswith("bytes %d-" % have):
                    raise Failed("the server resumed at another byte than %d (Content-Range %s); remove the part %s" % (
                        have, escape(resp.headers.get("Content-Range") or "missing"), escape(part)))
                at = have
            elif resp.status == 200:
                os.ftruncate(fd, 0)
                at = 0
            else:
                raise Failed("the server answered %d" % resp.status)
            length = resp.headers.get("Content-Length")
            expected = at + int(length) if length and length.isdigit() else None
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    n = os.pwrite(fd, view, at)
                    at += n
                    view = view[n:]
            if expected is not None and at < expected:
                raise Failed("the connection ended after %d of %d bytes; the part is kept and the next run resumes it" % (at, expected))
        os.fsync(fd)
        return fd
    except BaseException:
        os.close(fd)
        raise


def why(e):
    """An error's words, without Python's [Errno N] decoration."""
    inner = getattr(e, "reason", None)
    if isinstance(inner, BaseException):
        e = inner
    elif isinstance(inner, str) and inner:
        return escape(inner)
    return escape(getattr(e, "strerror", None) or str(e) or type(e).__name__)


def keep_or_drop(cat_fd, part):
    """An empty part (nothing came) goes; one with bytes stays for the next run to resume."""
    try:
        st = os.stat(part, dir_fd=cat_fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(part, dir_fd=cat_fd)
            return "nothing was downloaded"
    except OSError:
        return "nothing was downloaded"
    return "the part is kept and the next run resumes it"


def fetch_missing(cat_fd, file, path, model, state):
    part = part_name(file)
    try:
        fd = download(cat_fd, part, model["url"])
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise Failed("the download stopped (%s); %s" % (why(e), keep_or_drop(cat_fd, part)))
    try:
        sha, size = sha_of_fd(fd)
    finally:
        os.close(fd)
    if sha != model["sha256"]:
        os.unlink(part, dir_fd=cat_fd)
        return ("refused", size, sha, "the download's SHA-256 is %s, not the declared %s; it was deleted" % (sha, model["sha256"]))
    try:
        os.link(part, file, src_dir_fd=cat_fd, dst_dir_fd=cat_fd, follow_symlinks=False)
    except FileExistsError:
        # Someone put a file there meanwhile: it stays; say what it is.
        os.unlink(part, dir_fd=cat_fd)
        st = lstat_at(cat_fd, file)
        if st is None:
            raise Failed("its name appeared and vanished while it was being fetched; run again")
        return judge_existing(cat_fd, file, path, st, model, state)
    except OSError as e:
        raise Failed("the verified download could not be given its name (%s); it stays as %s" % (e.strerror, escape(part)))
    os.unlink(part, dir_fd=cat_fd)
    st = lstat_at(cat_fd, file)
    if st is not None and stat.S_ISREG(st.st_mode):
        state["records"][path] = dict(zip(("dev", "ino", "size", "mtime_ns"), identity(st)), sha256=sha)
        state["dirty"] = True
    return ("fetched", size, sha, "")


def one(store_fd, model, verb, state):
    """(status, size, sha, reason) of one model."""
    category, file = model["category"], model["file"]
    path = "%s/%s" % (category, file)
    try:
        cat_fd = open_dir(category, store_fd)
    except FileNotFoundError:
        raise Failed("its category folder %s is missing: converge the storage layout first" % escape(category))
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Failed("its category %s is not a real folder (a link is never followed): make it a folder" % escape(category))
        raise Failed("its category folder %s could not be opened (%s)" % (escape(category), e.strerror))
    try:
        st = lstat_at(cat_fd, file)
        if st is not None:
            return judge_existing(cat_fd, file, path, st, model, state)
        if verb == "fetch":
            return fetch_missing(cat_fd, file, path, model, state)
        pst = lstat_at(cat_fd, part_name(file))
        if pst is not None:
            return ("partial", pst.st_size, None, "a partial download of %d bytes is there; converge resumes it" % pst.st_size)
        return ("missing", 0, None, "converge fetches it")
    finally:
        os.close(cat_fd)


# ---- the state -------------------------------------------------------------------------------

def read_state(state_dir):
    state = {"dir_fd": None, "records": {}, "dirty": False}
    if state_dir is None:
        return state
    try:
        state["dir_fd"] = open_dir(state_dir)
    except OSError as e:
        print("fetch.py: the state folder %s cannot be used (%s): every model is hashed" % (escape(state_dir), e.strerror), file=sys.stderr)
        return state
    try:
        fd = os.open(STATE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=state["dir_fd"])
    except OSError:
        return state  # none yet, or not ours to read: it is written afresh
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_STATE_BYTES:
            doc = json.loads(os.read(fd, st.st_size + 1).decode("utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("records"), dict):
                state["records"] = {k: v for k, v in doc["records"].items() if isinstance(v, dict)}
    except (OSError, ValueError):
        pass  # unreadable or not ours: every model is hashed
    finally:
        os.close(fd)
    return state


def write_state(state):
    dir_fd = state["dir_fd"]
    if dir_fd is None or not state["dirty"]:
        return
    data = (json.dumps({"format": "modelshare-declared", "version": 1, "records": state["records"]},
                       ensure_ascii=True, sort_keys=True) + "\n").encode("ascii")
    tmp = ".%s.%s.tmp" % (STATE, secrets.token_hex(8))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, STATE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as e:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        print("fetch.py: the state could not be written (%s): the next run hashes again" % e.strerror, file=sys.stderr)


# ---- the command line ------------------------------------------------------------------------

def parse_args(argv):
    opts = {"frame": None, "state": None}
    rest = list(argv)
    while rest and rest[0] in ("--frame", "--state"):
        flag = rest.pop(0)
        if not rest:
            raise Usage("%s needs a value." % flag)
        opts[flag[2:]] = rest.pop(0)
    if len(rest) != 3 or rest[0] not in ("fetch", "check"):
        raise Usage(USAGE)
    frame = opts["frame"]
    if frame is not None and not (len(frame) in (0, 32) and all(c in "0123456789abcdef" for c in frame)):
        raise Usage("--frame needs 32 lowercase hex digits, or the empty string.")
    opts["verb"], opts["store"] = rest[0], rest[1]
    try:
        models = json.loads(rest[2])
    except ValueError:
        raise Usage("JSON_LIST is not JSON.")
    keys = ("category", "file", "url", "sha256")
    if not isinstance(models, list) or not all(
            isinstance(m, dict) and all(isinstance(m.get(k), str) for k in keys) for m in models):
        raise Usage("JSON_LIST must be a list of {category, file, url, sha256}.")
    for m in models:
        if not (plain_name(m["category"]) and plain_name(m["file"]) and not m["file"].startswith(".")):
            raise Usage("%s/%s is not a category and a plain file name." % (escape(m["category"]), escape(m["file"])))
    opts["models"] = models
    return opts


def row(frame, status, size, sha, path, reason):
    if frame is None:
        return "%s %s%s" % (status, escape(path), ": " + escape(reason) if reason else "")
    fields = ["declared", status, str(size), sha or "-", escape(path).replace(" ", "\\x20"), escape(reason) or "-"]
    return ("%s report: " % frame if frame else "report: ") + " ".join(fields)


def main(argv):
    try:
        opts = parse_args(argv)
    except Usage as e:
        print(e if str(e).startswith("usage:") else "fetch.py: %s" % e, file=sys.stderr)
        return 2
    try:
        store_fd = open_dir(opts["store"])
    except OSError as e:
        print("fetch.py: the model store %s is not a folder that can be opened without following a link (%s)." % (
            escape(opts["store"]), e.strerror), file=sys.stderr)
        return 2
    state = read_state(opts["state"])
    bad = []
    try:
        for m in opts["models"]:
            path = "%s/%s" % (m["category"], m["file"])
            try:
                status, size, sha, reason = one(store_fd, m, opts["verb"], state)
            except Failed as e:
                status, size, sha, reason = "failed", 0, None, str(e)
            out = row(opts["frame"], status, size, sha, path, reason) + "\n"
            sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))
            sys.stdout.flush()
            if status in BAD and opts["verb"] == "fetch":
                bad.append("%s (%s)" % (escape(path), status))
                print("%s: %s: %s" % (escape(path), status, escape(reason)), file=sys.stderr)
        write_state(state)
    finally:
        os.close(store_fd)
        if state["dir_fd"] is not None:
            os.close(state["dir_fd"])
    if bad:
        print("%d of %d declared models are not in place: %s" % (len(bad), len(opts["models"]), ", ".join(bad)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
