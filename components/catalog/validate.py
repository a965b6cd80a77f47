# validate.py: judges the model files of one category folder of modelshare's store, so the
# catalog only offers files that are whole, well formed and free of code (issue 20, item 1).
#
# Run:  python3 -I validate.py [--stable-seconds N] [--now EPOCH] DIR
#   or  python3 -I -c "$SOURCE" ARGS   /   python3 -I - ARGS  (source on stdin)
# It never reads __file__ or sys.path[0]. It prints one JSON line per entry under DIR, sorted
# by path bytes, then {"summary": {status: count}}. Exit 0 when the walk completed, whatever it
# found; 2 on a usage error or when DIR is not a directory or is a symlink.
#
# Safety: it runs as the storage owner over files an attacker may have written.
# - No symlink is followed: directories are opened O_NOFOLLOW|O_DIRECTORY relative to their
#   parent's fd, files O_NOFOLLOW|O_NONBLOCK relative to theirs; only what lstat calls a
#   regular file is opened, and fstat must agree. FIFOs, sockets and devices are never opened.
# - Nothing from a file is unpickled, imported or executed: pickles are only walked opcode by
#   opcode (pickletools.genops) with a simulated stack to learn which globals they import.
# - Every read is bounded by the file's real size and by the caps below.
# - Nothing is written anywhere (not even bytecode caches).
#
# Verdicts worth knowing: a safetensors header length over 100 MB is invalid even in a shorter
# file (no reader accepts one, so no further upload mends it); a pickle importing anything off
# the allowlist is dangerous even when it is also cut off or malformed (the unpickler runs the
# import before it meets the fault); of torch's legacy format (pickles in a row, then raw
# storage bytes) at most the 5 pickles torch.load unpickles are scanned, the bytes never.
import sys

sys.dont_write_bytecode = True

import io, json, os, pickletools, stat, struct, time, zipfile, zlib  # noqa: E402

MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library refuses larger (HeaderTooLarge)
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # per pickle stream, and per torch-zip file in total
MAX_PICKLE_OPS = 10_000_000
MAX_ZIP_DIRECTORY = 64 * 1024 * 1024
MAX_LEGACY_PICKLES = 5  # torch's legacy loader unpickles 5 streams; raw storage bytes follow
MAX_GGUF_STRING = 1024 * 1024  # for keys and tensor names, the only strings read whole
MAX_GGUF_COUNT = 1 << 24
MAX_DEPTH = 64  # deeper folders are reported, not entered (bounds recursion and open fds)
STATUSES = ("ok", "incomplete", "invalid", "dangerous", "unstable", "unknown", "skipped")

# Bits per element, from huggingface/safetensors (Dtype in safetensors/src/tensor.rs).
SAFETENSORS_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}

# ggml type id -> (elements per block, bytes per block), from ggml-org/ggml: the enum ggml_type
# in include/ggml.h and the type_traits table in src/ggml.c (blck_size, type_size =
# sizeof(block_*) as asserted in src/ggml-common.h). Ids 4, 5, 31-33 and 36-38 were removed.
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36),
}  # 41 (Q1_0) and anything newer: "unknown tensor type", only its offset is checked
GGML_MAX_DIMS = 4  # gguf.cpp rejects tensors with more dimensions
# GGUF metadata value type -> fixed size (8 string and 9 array are read specially).
GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

# The globals a PyTorch or numpy checkpoint needs, each one harmless to call: container and
# tensor constructors, storage and dtype names (torch's weights_only unpickler allows the torch
# ones). Not here on purpose: torch.storage._load_from_bytes (runs torch.load on bytes),
# copyreg/copy_reg._reconstructor (instantiates any class), every builtins callable that can
# reach code (eval, exec, getattr, __import__, ...). Anything else is reported as dangerous;
# the list grows only when a real checkpoint needs a name and the name is shown to be harmless.
TORCH_STORAGES = "Float Half BFloat16 Double Long Int Short Char Byte Bool".split()
TORCH_DTYPES = "float16 float32 float64 bfloat16 int8 int16 int32 int64 uint8 bool".split()
ALLOWED_GLOBALS = frozenset(
    ["collections.OrderedDict", "torch.Size", "torch.device", "_codecs.encode"]
    + ["torch._utils." + f for f in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
       "_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_sparse_tensor",
       "_rebuild_qtensor")]
    + ["torch.%sStorage" % s for s in TORCH_STORAGES] + ["torch." + d for d in TORCH_DTYPES]
    + [m + ".multiarray." + f for m in ("numpy.core", "numpy._core") for f in ("_reconstruct", "scalar")]
    + ["numpy.ndarray", "numpy.dtype"]
    + [b + "." + f for b in ("builtins", "__builtin__")  # Python 2 spelling: protocol 2 pickles
       for f in ("set", "frozenset", "bytearray", "slice", "complex")]
)
STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
              "BINUNICODE8"}
MARK = object()  # a MARK on the simulated pickle stack
UNRESOLVED = "?unresolved"


class Verdict(Exception):
    """Ends a file's check with a status and a one-sentence reason."""

    def __init__(self, status, reason, *args):
        self.status, self.reason = status, reason % args if args else reason
        super().__init__(self.reason)


class FdReader:
    """A buffered, bounded file-like reader over an fd (pread: the fd's offset is never used)."""

    def __init__(self, fd, size):
        self.fd, self.size, self.pos, self.end = fd, size, 0, size  # end: a cap the caller may lower
        self.buf, self.buf_at = b"", 0

    def _fill(self, n):
        have = self.buf_at + len(self.buf) - self.pos
        if self.pos < self.buf_at or have < n:
            want = min(max(n, 1 << 20), self.end - self.pos)
            self.buf, self.buf_at = os.pread(self.fd, want, self.pos) if want > 0 else b"", self.pos

    def read(self, n=-1):
        n = self.end - self.pos if n is None or n < 0 else min(n, self.end - self.pos)
        self._fill(n)
        at = self.pos - self.buf_at
        data = self.buf[at : at + n]
        self.pos += len(data)
        return data

    def readline(self):
        line = b""
        while not line.endswith(b"\n") and len(line) < 65536:
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return line

    def skip(self, n):
        if self.pos + n > self.size:
            raise Verdict("incomplete", "the header runs past the end of the file (truncated?).")
        self.pos += n

    def exact(self, n):
        data = self.read(n)
        if len(data) < n:
            raise Verdict("incomplete", "the header runs past the end of the file (truncated?).")
        return data

    def tell(self):
        return self.pos

    def at_end(self):
        return self.pos >= self.end


# ---- safetensors ---------------------------------------------------------------------------

def check_safetensors(fd, size):
    if size < 8:
        raise Verdict("incomplete", "shorter than the 8-byte header length.")
    (n,) = struct.unpack("<Q", os.pread(fd, 8, 0))
    if n > MAX_SAFETENSORS_HEADER:
        raise Verdict("invalid", "declares a %d-byte header, over the 100 MB any reader accepts.", n)
    if 8 + n > size:
        raise Verdict("incomplete", "declares a %d-byte header but the file ends before it.", n)
    try:
        header = json.loads(os.pread(fd, n, 8).decode("utf-8"), object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as e:
        raise Verdict("invalid", "the header is not valid JSON (%s).", str(e).split("\n")[0])
    if not isinstance(header, dict):
        raise Verdict("invalid", "the header is not a JSON object.")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise Verdict("invalid", "__metadata__ is not a map of strings to strings.")
    spans = sorted(tensor_span(name, t) for name, t in header.items())
    end = 0
    for begin, stop, name in spans:
        if begin != end:
            raise Verdict("invalid", "tensor %r starts at %d, not where the previous one ends (%d).",
                          name, begin, end)
        end = stop
    data = size - 8 - n
    if end < data:
        raise Verdict("invalid", "%d trailing bytes after the last tensor.", data - end)
    if end > data:
        raise Verdict("incomplete", "the tensors need %d data bytes but the file has %d (truncated?).",
                      end, data)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key in the header")
    return dict(pairs)


def tensor_span(name, t):
    if not isinstance(t, dict):
        raise Verdict("invalid", "tensor %r is not a JSON object.", name)
    dtype, shape, offsets = t.get("dtype"), t.get("shape"), t.get("data_offsets")
    if dtype not in SAFETENSORS_BITS:
        raise Verdict("invalid", "tensor %r has an unknown dtype %r.", name, dtype)
    if not isinstance(shape, list) or not all(is_count(d) for d in shape):
        raise Verdict("invalid", "tensor %r has no valid shape.", name)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise Verdict("invalid", "tensor %r has no valid data_offsets.", name)
    count = 1
    for d in shape:
        count = min(count * d, 1 << 70)  # past any file's size; keeps a hostile shape's product small
    bits = count * SAFETENSORS_BITS[dtype]
    if bits % 8 or offsets[1] - offsets[0] != bits // 8:
        raise Verdict("invalid", "tensor %r: %s %s needs %g bytes but data_offsets span %d.",
                      name, dtype, shape, bits / 8, offsets[1] - offsets[0])
    return offsets[0], offsets[1], name


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# ---- GGUF ------------------------------------------------------------------------------------

def check_gguf(fd, size):
    r = FdReader(fd, size)
    magic = r.read(4)
    if magic != b"GGUF":
        if len(magic) < 4 and b"GGUF".startswith(magic):
            raise Verdict("incomplete", "shorter than the GGUF header.")
        raise Verdict("invalid", "bad magic %r: not a GGUF file.", magic)
    version, n_tensors, n_kv = struct.unpack("<IQQ", r.exact(20))
    if version == 1:
        raise Verdict("invalid", "GGUF version 1 is an unsupported old version.")
    if version not in (2, 3):
        raise Verdict("invalid", "unknown GGUF version %d (or big-endian).", version)
    if n_tensors > MAX_GGUF_COUNT or n_kv > MAX_GGUF_COUNT:
        raise Verdict("invalid", "absurd counts: %d tensors, %d metadata entries.", n_tensors, n_kv)
    alignment = 32
    for _ in range(n_kv):
        key = gguf_string(r, "metadata key")
        (vtype,) = struct.unpack("<I", r.exact(4))
        if key == b"general.alignment":
            if vtype != 4:
                raise Verdict("invalid", "general.alignment is not a u32.")
            (alignment,) = struct.unpack("<I", r.exact(4))
            if alignment == 0 or alignment & (alignment - 1):
                raise Verdict("invalid", "general.alignment %d is not a power of two.", alignment)
        else:
            skip_gguf_value(r, vtype, 0)
    tensors, names = [], set()
    for _ in range(n_tensors):
        name = gguf_string(r, "tensor name")
        if name in names:
            raise Verdict("invalid", "tensor %r appears twice.", name.decode("utf-8", "replace"))
        names.add(name)
        (n_dims,) = struct.unpack("<I", r.exact(4))
        if n_dims > GGML_MAX_DIMS:
            raise Verdict("invalid", "a tensor has %d dimensions (ggml allows %d).",
                          n_dims, GGML_MAX_DIMS)
        dims = struct.unpack("<%dQ" % n_dims, r.exact(8 * n_dims))
        gtype, offset = struct.unpack("<IQ", r.exact(12))
        tensors.append((offset, gtype, dims, name.decode("utf-8", "replace")))
    data_start = -(-r.tell() // alignment) * alignment
    return gguf_data(tensors, data_start, alignment, size)


def gguf_data(tensors, data_start, alignment, size):
    unknown, end = [], data_start if tensors else 0
    for offset, gtype, dims, name in sorted(tensors):
        if offset % alignment:
            raise Verdict("invalid", "tensor %r has offset %d, not a multiple of the alignment %d.",
                          name, offset, alignment)
        if data_start + offset < end:
            raise Verdict("invalid", "tensor %r overlaps the tensor before it.", name)
        if gtype not in GGML_TYPES:
            unknown.append(gtype)
            end = max(end, data_start + offset)
            continue
        block, block_bytes = GGML_TYPES[gtype]
        count = 1
        for d in dims:
            count *= d
        if dims and dims[0] % block:
            raise Verdict("invalid", "tensor %r: row of %d is not a multiple of its type's block of %d.",
                          name, dims[0], block)
        end = data_start + offset + count // block * block_bytes
    if end > size:
        raise Verdict("incomplete", "the tensor data needs %d bytes but the file has %d (truncated?).",
                      end, size)
    if unknown:
        types = ", ".join(map(str, sorted(set(unknown))))
        return "unknown tensor type %s (only its offset was checked)." % types
    return ""


def gguf_string(r, what):
    (n,) = struct.unpack("<Q", r.exact(8))
    if n > MAX_GGUF_STRING:
        raise Verdict("invalid", "a %s of %d bytes.", what, n)
    return r.exact(n)


def skip_gguf_value(r, vtype, depth):
    if vtype in GGUF_SCALARS:
        r.skip(GGUF_SCALARS[vtype])
    elif vtype == 8:
        (n,) = struct.unpack("<Q", r.exact(8))
        r.skip(n)
    elif vtype == 9:
        etype, count = struct.unpack("<IQ", r.exact(12))
        if depth >= 4:
            raise Verdict("invalid", "metadata arrays nested over 4 deep.")
        if etype in GGUF_SCALARS:
            r.skip(GGUF_SCALARS[etype] * count)
        elif count > r.size:  # every element takes at least one byte
            raise Verdict("incomplete", "an array of %d elements runs past the end of the file.", count)
        else:
            for _ in range(count):
                skip_gguf_value(r, etype, depth + 1)
    else:
        raise Verdict("invalid", "unknown GGUF metadata value type %d.", vtype)


# ---- pickles -----------------------------------------------------------------------------------

def scan_pickle(reader, found):
    """Walks one pickle stream, adding every global it would import to `found`. Returns at
    STOP; raises Verdict when the stream is cut off or malformed (`found` is kept either way)."""
    stack, memo, ops = [], {}, 0
    try:
        for op, arg, _ in pickletools.genops(reader):
            ops += 1
            if ops > MAX_PICKLE_OPS:
                raise Verdict("invalid", "a pickle of over %d opcodes, not scanned further.",
                              MAX_PICKLE_OPS)
            if op.name == "STOP":
                return
            simulate(op, arg, stack, memo, found)
    except Verdict:
        raise
    except Exception as e:  # genops' ValueErrors, and the simulation's IndexErrors
        if reader.at_end():
            raise Verdict("incomplete", "a pickle stream is cut off before its STOP (truncated?).")
        raise Verdict("invalid", "a malformed pickle (%s).", str(e).split("\n")[0][:200])
    raise Verdict("incomplete", "a pickle stream is cut off before its STOP (truncated?).")


def simulate(op, arg, stack, memo, found):
    """The stack effect of one opcode as the unpickler has it (like pickletools.dis), keeping
    strings so STACK_GLOBAL resolves exactly the two objects the unpickler would pop."""
    name, before, after = op.name, op.stack_before, op.stack_after
    if name in ("GLOBAL", "INST"):
        found.add(".".join(arg.split(" ", 1)))
    elif name.startswith("EXT"):
        found.add("?extension-registry-%s" % arg)
    elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):  # stores the top, pops nothing
        if not stack or stack[-1] is MARK:
            raise ValueError("nothing to memoize")
        memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        return
    pushed = [MARK if a is pickletools.markobject else None for a in after]
    if pickletools.markobject in before or (name == "POP" and stack and stack[-1] is MARK):
        while stack[-1] is not MARK:  # IndexError when there is no MARK: malformed
            stack.pop()
        stack.pop()
        mark_at = before.index(pickletools.markobject) if pickletools.markobject in before else 0
        before = before[:mark_at]
    if len(stack) < len(before):
        raise ValueError("stack underflow at %s" % name)
    popped = stack[len(stack) - len(before):] if before else []
    del stack[len(stack) - len(before):]
    if MARK in popped:
        raise ValueError("%s pops a MARK" % name)
    if name == "DUP":
        pushed = popped * 2
    elif name == "STACK_GLOBAL":
        module, attr = popped
        ok = isinstance(module, str) and isinstance(attr, str)
        found.add(module + "." + attr if ok else UNRESOLVED)
    elif name in STRING_OPS:
        pushed = [arg if isinstance(arg, str) else None]
    elif name in ("GET", "BINGET", "LONG_BINGET"):
        if arg not in memo:
            raise ValueError("memo %r read before it is written" % arg)
        pushed = [memo[arg]]
    stack.extend(pushed)


def is_pickle_start(reader):
    head = reader.read(2)
    reader.pos -= len(head)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def check_pickle_file(fd, size, found):
    """A plain pickle, or torch's legacy format: pickles in a row, then raw storage bytes."""
    reader = FdReader(fd, size)
    for _ in range(MAX_LEGACY_PICKLES):
        reader.end = min(size, reader.pos + MAX_PICKLE_BYTES)
        start = reader.pos
        try:
            scan_pickle(reader, found)
        except Verdict:
            if reader.end < size and reader.pos - start >= MAX_PICKLE_BYTES:
                raise Verdict("invalid", "a pickle stream over 256 MiB, not scanned.")
            raise
        reader.end = size
        if not is_pickle_start(reader):
            return


class BytesReader(io.BytesIO):
    """A zip member's bytes, read like FdReader."""

    def __init__(self, data):
        super().__init__(data)
        self.size = len(data)

    def at_end(self):
        return self.tell() >= self.size


def check_torch_zip(fd, size, found):
    with os.fdopen(os.dup(fd), "rb") as f:
        try:
            # The central directory is read whole by zipfile: bound it first.
            endrec = zipfile._EndRecData(f)
            if endrec is None:
                raise Verdict("incomplete", "a zip without its central directory at the end (truncated?).")
            if endrec[zipfile._ECD_SIZE] > MAX_ZIP_DIRECTORY:
                raise Verdict("invalid", "a zip directory of %d bytes.", endrec[zipfile._ECD_SIZE])
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, EOFError, ValueError) as e:
            raise Verdict("invalid", "a zip with an unreadable central directory (%s).", e)
        with zf:
            members = [i for i in zf.infolist() if i.filename.endswith(".pkl")]
            if not members:
                raise Verdict("invalid", "a zip with no .pkl member: not a PyTorch checkpoint.")
            budget = MAX_PICKLE_BYTES
            for info in members:
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise Verdict("invalid", "member %s uses compression %d.",
                                  info.filename, info.compress_type)
                data = read_member(zf, info, budget)
                budget -= len(data)
                scan_pickle(BytesReader(data), found)


def read_member(zf, info, budget):
    """The member's bytes, read in chunks so a zip bomb stops at the budget."""
    chunks, total = [], 0
    try:
        with zf.open(info) as m:
            while chunk := m.read(1 << 20):
                total += len(chunk)
                if total > budget:
                    raise Verdict("invalid", "its .pkl members unpack to over 256 MiB.")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, ValueError) as e:
        raise Verdict("invalid", "member %s cannot be read (%s).", info.filename, e)
    return b"".join(chunks)


def check_torch(fd, size, entry):
    head = os.pread(fd, 4, 0)
    if not head:
        raise Verdict("incomplete", "an empty file.")
    is_zip = head == b"PK\x03\x04"
    entry["format"], found, failure = "torch-zip" if is_zip else "pickle", set(), None
    try:
        (check_torch_zip if is_zip else check_pickle_file)(fd, size, found)
    except Verdict as v:
        failure = v
    except OSError:
        raise
    except Exception as e:  # whatever else a crafted file provokes: the globals found still count
        failure = Verdict("invalid", "could not be parsed (%s).", type(e).__name__)
    # torch.load also unpickles protocol 0/1 pickles, which have no PROTO: a file without one
    # is a pickle when it imports something, and otherwise not a model file at all.
    if not is_zip and head[0] != 0x80 and not found:
        entry["format"] = "unknown"
        raise Verdict("unknown", "not a pickle or zip.")
    entry["globals"] = sorted(found)
    bad = sorted(g for g in found if g not in ALLOWED_GLOBALS)
    if bad:  # before any other finding: the unpickler runs these before it meets the fault
        raise Verdict("dangerous", "imports code outside the allowlist: %s.", ", ".join(bad[:10]))
    if failure:
        raise failure
    return ""


# ---- the walk --------------------------------------------------------------------------------

FORMATS = {".safetensors": "safetensors", ".sft": "safetensors", ".gguf": "gguf",
           ".ckpt": "torch", ".pt": "torch", ".pth": "torch", ".bin": "torch"}
CHECKS = {"safetensors": check_safetensors, "gguf": check_gguf}
KINDS = [(stat.S_ISLNK, "a symbolic link (not followed)"), (stat.S_ISFIFO, "a FIFO"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory")]


def kind_of(mode):
    return next((what for test, what in KINDS if test(mode)), "not a regular file")


def judge_file(dir_fd, name, path, opts):
    ext = os.path.splitext(name)[1].lower()
    family = FORMATS.get(ext)
    fmt = family if family in CHECKS else "unknown"
    entry = {"path": path, "size": 0, "format": fmt, "status": "ok", "reason": ""}
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        return dict(entry, status="skipped", reason="could not be opened (%s)." % e.strerror)
    try:
        st = os.fstat(fd)
        entry["size"] = st.st_size
        if not stat.S_ISREG(st.st_mode):
            why = kind_of(st.st_mode) + ", never read."
            return dict(entry, format="unknown", status="skipped", reason=why)
        if st.st_mtime > opts["now"] - opts["stable"]:
            why = "modified less than %gs ago: left alone until it settles." % opts["stable"]
            return dict(entry, status="unstable", reason=why)
        if family is None:
            why = "not a model format modelshare checks (%s)." % (ext or "no extension")
            return dict(entry, status="unknown", reason=why)
        try:
            check = CHECKS.get(family) or (lambda fd, size: check_torch(fd, size, entry))
            entry["reason"] = check(fd, st.st_size) or ""
        except Verdict as v:
            entry["status"], entry["reason"] = v.status, v.reason
        except OSError as e:
            entry["status"], entry["reason"] = "skipped", "could not be read (%s)." % e.strerror
        except Exception as e:  # a parser fault a crafted file provokes must not end the walk
            entry["status"], entry["reason"] = "invalid", "could not be parsed (%s)." % type(e).__name__
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            why = "changed while it was being read: left alone, not judged."
            return dict(entry, status="unstable", reason=why)
        return entry
    finally:
        os.close(fd)


def walk(dir_fd, prefix, depth, opts, out):
    for name in os.listdir(dir_fd):
        path = prefix + name
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except OSError as e:
            out.append(skipped(path, 0, "vanished or unreadable (%s)." % e.strerror))
            continue
        if stat.S_ISDIR(st.st_mode):
            enter(dir_fd, name, path, depth, opts, out)
        elif stat.S_ISREG(st.st_mode):
            out.append(judge_file(dir_fd, name, path, opts))
        else:
            out.append(skipped(path, st.st_size, "%s, never opened." % kind_of(st.st_mode)))


def enter(dir_fd, name, path, depth, opts, out):
    if depth >= MAX_DEPTH:
        out.append(skipped(path, 0, "a directory nested over %d levels deep, not entered." % MAX_DEPTH))
        return
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        out.append(skipped(path, 0, "a directory that could not be opened (%s)." % e.strerror))
        return
    try:
        walk(fd, path + "/", depth + 1, opts, out)
    except OSError as e:  # listing it failed: what was found inside so far stays
        out.append(skipped(path, 0, "a directory that could not be listed (%s)." % e.strerror))
    finally:
        os.close(fd)


def skipped(path, size, reason):
    return {"path": path, "size": size, "format": "unknown", "status": "skipped", "reason": reason}


def parse_args(argv):
    opts, rest = {"stable": 60.0, "now": None}, list(argv)
    while rest and rest[0] in ("--stable-seconds", "--now"):
        flag = rest.pop(0)
        try:
            value = float(rest.pop(0))
        except (IndexError, ValueError):
            raise SystemExit("validate.py: %s needs a number." % flag)
        opts["stable" if flag == "--stable-seconds" else "now"] = value
    if len(rest) != 1 or rest[0].startswith("--"):
        raise SystemExit("usage: validate.py [--stable-seconds N] [--now EPOCH] DIR")
    opts["dir"] = rest[0]
    if opts["now"] is None:
        opts["now"] = time.time()
    return opts


def main(argv):
    try:
        opts = parse_args(argv)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    try:
        top = os.open(opts["dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        why = "is not a directory that can be opened without following a link"
        print("validate.py: %s %s (%s)." % (opts["dir"], why, e.strerror), file=sys.stderr)
        return 2
    out = []
    try:
        walk(top, "", 0, opts, out)
    except OSError as e:
        print("validate.py: %s could not be listed (%s)." % (opts["dir"], e.strerror), file=sys.stderr)
        return 2
    finally:
        os.close(top)
    counts = dict.fromkeys(STATUSES, 0)
    for entry in sorted(out, key=lambda e: os.fsencode(e["path"])):
        counts[entry["status"]] += 1
        print(json.dumps(entry, ensure_ascii=True, sort_keys=True))
    print(json.dumps({"summary": counts}, ensure_ascii=True, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
