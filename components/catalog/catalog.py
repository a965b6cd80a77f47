# catalog.py: the store's catalog tool. It judges the model files of one category folder of
# modelshare's store, so the catalog only offers files that are whole, well formed and free of
# code (issue 20, item 1), and hashes every file it judges (SHA-256), remembering the hashes in
# an optional index so a second run over an unchanged tree reads nothing.
#
# Run:  python3 -I catalog.py [--stable-seconds N] [--now EPOCH] [--index FILE [--no-write]]
#                             [--dedupe] [--frame FRAME] DIR
#   or  python3 -I -c "$SOURCE" ARGS   /   python3 -I - ARGS  (source on stdin)
# It never reads __file__ or sys.path[0]. It prints one JSON line per entry under DIR, sorted
# by path bytes, then {"hashed_files": N, "read_bytes": N, "summary": {status: count}}; with
# --frame, report lines instead (see framed_lines). Exit 0 when the walk completed, whatever it
# found; 2 on a usage error, when DIR is not a directory or is a symlink, or when the index's
# folder cannot be opened (a symlink too) or the index cannot be written.
#
# --dedupe (with --index, never --no-write): after the walk, every other name of the same
# content (ok, hashed, same device) becomes a hard link to one canonical inode; see dedupe().
#
# Safety: it runs as the storage owner over files an attacker may have written.
# - No symlink is followed: directories are opened O_NOFOLLOW|O_DIRECTORY relative to their
#   parent's fd, files O_NOFOLLOW|O_NONBLOCK relative to theirs; only what lstat calls a
#   regular file is opened, and fstat must agree. FIFOs, sockets and devices are never opened.
# - Nothing from a file is unpickled, imported or executed: pickles are only walked opcode by
#   opcode (pickletools.genops) with a simulated stack to learn which globals they import.
# - Every read is bounded by the file's real size and by the caps below; the hash is read from
#   the fd that was judged, so the hash and the verdict are of the same file.
# - Nothing is written anywhere (not even bytecode caches) but the index, when --index names
#   one: opened relative to its folder's fd, replaced atomically, under a lock on that folder.
#
# Verdicts worth knowing: a safetensors header length over 100 MB is invalid even in a shorter
# file (no reader accepts one, so no further upload mends it); a pickle importing anything off
# the allowlist is dangerous even when it is also cut off or malformed (the unpickler runs the
# import before it meets the fault); of torch's legacy format (pickles in a row, then raw
# storage bytes) at most the 5 pickles torch.load unpickles are scanned, the bytes never.
import sys

sys.dont_write_bytecode = True

import errno, fcntl, hashlib, io, json, os, pickletools, secrets, stat, struct, time, zipfile, zlib  # noqa: E402

MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library refuses larger (HeaderTooLarge)
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # per pickle stream, and per torch-zip file in total
MAX_PICKLE_OPS = 10_000_000
MAX_ZIP_DIRECTORY = 64 * 1024 * 1024
MAX_LEGACY_PICKLES = 5  # torch's legacy loader unpickles 5 streams; raw storage bytes follow
MAX_GGUF_STRING = 1024 * 1024  # for keys and tensor names, the only strings read whole
MAX_GGUF_COUNT = 1 << 24
MAX_DEPTH = 64  # deeper folders are reported, not entered (bounds recursion and open fds)
STATUSES = ("ok", "incomplete", "invalid", "dangerous", "unstable", "unknown", "skipped")
UNHASHED = ("unstable", "skipped")  # never hashed, never in the index
HASH_CHUNK = 4 << 20  # bytes per pread while hashing
MAX_INDEX_BYTES = 512 << 20  # a bigger "index" was not written by this tool: ignored
INDEX_FORMAT = "modelshare-catalog-index"
# Bump when a check changes its verdicts: an index of other rules is not reused (its hashes still
# give since/changed_from), so every file is judged again under the new rules.
RULES = 1

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


# Bytes read from model files this run (judging, hashing, and --dedupe comparing), and files
# hashed afresh.
METER = {"read_bytes": 0, "hashed_files": 0}


def pread(fd, n, offset):
    """os.pread, counted in METER: the only way this tool reads a model file."""
    data = os.pread(fd, n, offset)
    METER["read_bytes"] += len(data)
    return data


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
            self.buf, self.buf_at = pread(self.fd, want, self.pos) if want > 0 else b"", self.pos

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
    (n,) = struct.unpack("<Q", pread(fd, 8, 0))
    if n > MAX_SAFETENSORS_HEADER:
        raise Verdict("invalid", "declares a %d-byte header, over the 100 MB any reader accepts.", n)
    if 8 + n > size:
        raise Verdict("incomplete", "declares a %d-byte header but the file ends before it.", n)
    try:
        header = json.loads(pread(fd, n, 8).decode("utf-8"), object_pairs_hook=no_duplicates)
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


class PreadFile(io.RawIOBase):
    """The judged fd as a seekable file for zipfile, read by pread up to the fstat size (its
    bytes counted, the fd's own offset never moved)."""

    def __init__(self, fd, size):
        super().__init__()
        self.fd, self.size, self.pos = fd, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        at = offset + {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        if at < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self.pos = at
        return at

    def readinto(self, b):
        n = max(0, min(len(b), self.size - self.pos))
        data = pread(self.fd, n, self.pos) if n else b""
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)


def check_torch_zip(fd, size, found):
    with PreadFile(fd, size) as f:
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
    head = pread(fd, 4, 0)
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
    entry = {"path": path, "size": 0, "format": fmt, "status": "ok", "reason": "", "sha256": None}
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
            entry["status"], entry["reason"] = "unknown", why
        else:
            judge(fd, st.st_size, family, entry)
        if entry["status"] != "skipped":  # a read that failed while judging: nothing to hash
            hash_into(fd, st.st_size, entry)
        if entry["status"] == "skipped":  # a read failed: no hash, no index entry
            return entry
        # One check covers the verdict and the hash: both were read while this held.
        after = os.fstat(fd)
        if entry["sha256"] is None or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            why = "changed while it was being read: left alone, not judged."
            return dict(entry, status="unstable", reason=why, sha256=None)
        entry["_id"] = identity(st)
        return entry
    finally:
        os.close(fd)


def judge(fd, size, family, entry):
    """Sets the entry's status and reason from its format's check."""
    try:
        check = CHECKS.get(family) or (lambda fd, size: check_torch(fd, size, entry))
        entry["reason"] = check(fd, size) or ""
    except Verdict as v:
        entry["status"], entry["reason"] = v.status, v.reason
    except OSError as e:
        entry["status"], entry["reason"] = "skipped", "could not be read (%s)." % e.strerror
    except Exception as e:  # a parser fault a crafted file provokes must not end the walk
        entry["status"], entry["reason"] = "invalid", "could not be parsed (%s)." % type(e).__name__


def hash_into(fd, size, entry):
    """The SHA-256 of the judged fd's `size` bytes into entry["sha256"]; None when the file
    ended early (it shrank: unstable). A read error makes the entry skipped."""
    METER["hashed_files"] += 1
    h, at = hashlib.sha256(), 0
    try:
        while at < size:
            chunk = pread(fd, min(HASH_CHUNK, size - at), at)
            if not chunk:
                return
            h.update(chunk)
            at += len(chunk)
    except OSError as e:
        entry["status"], entry["reason"] = "skipped", "could not be read (%s)." % e.strerror
        return
    entry["sha256"] = h.hexdigest()


def identity(st):
    """What must not change for an index entry to stand for the file without reading it."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def reuse(path, st, opts):
    """The index's entry for this path as a judged entry, when lstat shows the very file it was
    made from (same device, inode, size and mtime): the file is not even opened."""
    old = opts["reusable"].get(path)
    if old is None or identity(st) != [old[k] for k in ("dev", "ino", "size", "mtime_ns")]:
        return None
    entry = {k: old[k] for k in ("size", "format", "status", "reason", "sha256")}
    if old["globals"] is not None:
        entry["globals"] = old["globals"]
    return dict(entry, path=path, _id=identity(st))


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
            entry = reuse(path, st, opts) or judge_file(dir_fd, name, path, opts)
            # What --dedupe compares: who owns the file, its mode, and how many names it has.
            entry["_meta"] = (st.st_uid, st.st_gid, st.st_mode, st.st_nlink)
            out.append(entry)
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
    return {"path": path, "size": size, "format": "unknown", "status": "skipped", "reason": reason,
            "sha256": None}


def open_top(opts):
    try:
        return os.open(opts["dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        why = "is not a directory that can be opened without following a link"
        raise Refusal("%s %s (%s)." % (shown(opts["dir"]), why, e.strerror))


def walk_top(top, opts):
    out = []
    try:
        walk(top, "", 0, opts, out)
    except OSError as e:
        raise Refusal("%s could not be listed (%s)." % (shown(opts["dir"]), e.strerror))
    return out


def add_history(entries, old_entries, now):
    """since, changed_from and changed_at of every entry, from the index's entry for its path:
    the same hash keeps them all; another hash is a change (the old hash and now)."""
    for e in entries:
        old = old_entries.get(e["path"])
        if e["sha256"] is None:
            e.update(changed_from=None, changed_at=None)
        elif old is None:
            e.update(_since=now, changed_from=None, changed_at=None)
        elif old["sha256"] == e["sha256"]:
            e.update(_since=old["since"], changed_from=old["changed_from"], changed_at=old["changed_at"])
        else:
            e.update(_since=now, changed_from=old["sha256"], changed_at=now)


# ---- the index -------------------------------------------------------------------------------
# One JSON document: {"format": INDEX_FORMAT, "version": 1, "rules": RULES, "entries": {path:
# entry}}, path as in the report (undecodable bytes as \udcXX). Only hashed files have entries:
# an unstable or skipped file's previous entry is dropped too (its old content may be gone; when
# it settles it is judged and hashed afresh, and compared with nothing): simple beats clever here.

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_time(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_sha(v):
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


INDEX_FIELDS = {
    "dev": is_count, "ino": is_count, "size": is_count, "mtime_ns": is_int, "sha256": is_sha,
    "format": lambda v: v in ("safetensors", "gguf", "pickle", "torch-zip", "unknown"),
    "status": lambda v: v in STATUSES and v not in UNHASHED,
    "reason": lambda v: isinstance(v, str),
    "globals": lambda v: v is None or isinstance(v, list) and all(isinstance(g, str) for g in v),
    "since": is_time,
    "changed_from": lambda v: v is None or is_sha(v),
    "changed_at": lambda v: v is None or is_time(v),
}


class Refusal(Exception):
    """Ends the run with exit 2 and this one line on stderr."""


def index_record(e):
    dev, ino, size, mtime_ns = e["_id"]
    return {"dev": dev, "ino": ino, "size": size, "mtime_ns": mtime_ns, "sha256": e["sha256"],
            "format": e["format"], "status": e["status"], "reason": e["reason"],
            "globals": e.get("globals"), "since": e["_since"], "changed_from": e["changed_from"],
            "changed_at": e["changed_at"]}


def parse_index(data):
    """The entries of an index's bytes and whether they were made under these RULES; ValueError
    when it is not an index this tool wrote (every entry is checked: a report from it must be
    as well formed as a fresh one)."""
    doc = json.loads(data.decode("utf-8"))
    if not (isinstance(doc, dict) and doc.get("format") == INDEX_FORMAT and doc.get("version") == 1
            and isinstance(doc.get("entries"), dict)):
        raise ValueError("not a catalog index")
    for path, e in doc["entries"].items():
        if not (isinstance(e, dict) and set(e) == set(INDEX_FIELDS)
                and all(ok(e[k]) for k, ok in INDEX_FIELDS.items())):
            raise ValueError("a malformed entry for %r" % path)
    return doc["entries"], doc.get("rules") == RULES


def open_index(opts):
    """Opens the index's folder without following a link, locks it for the whole run (shared
    for --no-write) so runs never interleave, and reads the index there into opts. Returns the
    folder's fd (closing it releases the lock). The lock is never waited for: the folder is the
    owner's, so whoever holds the owner's uid could hold it forever and hang every check. A run
    that finds it taken reuses what the index holds and writes nothing (the index is only ever
    replaced whole, so reading it while another run writes is safe)."""
    folder = os.path.dirname(opts["index"]) or "."
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        why = "is not a directory that can be opened without following a link"
        raise Refusal("the index's folder %s %s (%s)." % (shown(folder), why, e.strerror))
    try:
        try:
            fcntl.flock(dir_fd, (fcntl.LOCK_SH if opts["no_write"] else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            if opts["dedupe"]:
                os.close(dir_fd)
                raise Refusal("the index's folder %s is locked by another run: --dedupe runs alone; "
                              "run it again later." % shown(folder))
            if not opts["no_write"]:
                print("catalog.py: the index's folder %s is locked by another run: this run reuses "
                      "the index and writes nothing." % shown(folder), file=sys.stderr)
            opts["no_write"] = True
        old, same_rules = read_index(dir_fd, opts)
    except OSError as e:
        os.close(dir_fd)
        raise Refusal("the index's folder %s could not be locked (%s)." % (shown(folder), e.strerror))
    opts["old"], opts["reusable"] = old, old if same_rules else {}
    return dir_fd


def read_index(dir_fd, opts):
    """(entries, same_rules) of the index file, opened relative to its folder without following
    a link and without blocking; anything but a regular file holding an index is ignored with
    one line on stderr, and a fresh one replaces it."""
    base = os.path.basename(opts["index"])
    try:
        fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return {}, True  # the first run
    except OSError as e:
        return ignore_index(opts, "a symbolic link" if e.errno == errno.ELOOP
                            else "could not be opened (%s)" % e.strerror)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ignore_index(opts, kind_of(st.st_mode))
        if st.st_size > MAX_INDEX_BYTES:
            return ignore_index(opts, "over %d bytes" % MAX_INDEX_BYTES)
        data = read_all(fd, st.st_size)
    except OSError as e:
        return ignore_index(opts, "could not be read (%s)" % e.strerror)
    finally:
        os.close(fd)
    try:
        return parse_index(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSON errors included
        return ignore_index(opts, "not a catalog index (%s)" % str(e).split("\n")[0][:200])


def read_all(fd, size):
    chunks, at = [], 0
    while at <= size:  # one read past the size: an index that grew is read whole or refused
        chunk = os.pread(fd, 1 << 20, at)
        if not chunk:
            break
        chunks.append(chunk)
        at += len(chunk)
    if at > size + (1 << 20):
        raise OSError(errno.EFBIG, "it grew while being read")
    return b"".join(chunks)


def ignore_index(opts, what):
    then = "left as it is (--no-write)" if opts["no_write"] else "a new one replaces it"
    print("catalog.py: the index %s is %s: ignored, %s." % (shown(opts["index"]), what, then),
          file=sys.stderr)
    return {}, True


def write_index(dir_fd, opts, entries):
    """Replaces the index atomically: a new file beside it (O_EXCL|O_NOFOLLOW, 0600: never a
    planted link or file), fsynced, renamed over the old name (a link there is replaced, not
    followed), then the folder fsynced so the rename survives a crash."""
    base = os.path.basename(opts["index"])
    records = {e["path"]: index_record(e) for e in entries if e["sha256"] is not None}
    doc = {"format": INDEX_FORMAT, "version": 1, "rules": RULES, "entries": records}
    data = (json.dumps(doc, ensure_ascii=True, sort_keys=True) + "\n").encode("ascii")
    tmp = ".%s.%s.tmp" % (base, secrets.token_hex(8))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except OSError as e:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass  # never made, or renamed already
        raise Refusal("the index %s could not be written (%s)." % (shown(opts["index"]), e.strerror))


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ---- dedupe --------------------------------------------------------------------------------
# --dedupe: the same model uploaded under several names (two categories, two users) takes its
# space once. The files judged ok (stable, hashed) of one device, hash and size are one group;
# one inode of each is canonical (the most names, then the oldest, then the first path) and
# every other name becomes a hard link to it. No name is ever removed, only replaced at once
# (rename), and only after both files were opened again as the walk opens them (no link ever
# followed), found to be the very files hashed, and compared byte by byte: the index's word is
# never enough to make two names one file. A name whose file is written meanwhile gets that
# file back (replace_name), so a writer's bytes are never lost.

DEDUPE_PREFIX = ".modelshare-dedupe-"  # the backup and temp names, beside the name replaced


class Skip(Exception):
    """One name left as it is, with a one-sentence reason."""


def dedupe(top, entries):
    """Links every duplicate name to its group's canonical inode. Returns the rows, in path
    order: ("linked", SIZE, PATH, CANONICAL), ("skipped", REASON, PATH), and last ("saved",
    BYTES, NAMES). The entries of the names replaced take the canonical's identity, so the index
    written afterwards lets a later run reuse them without reading."""
    groups = {}  # entries are in path order, so the groups are too
    for e in entries:
        if e["status"] == "ok" and e["sha256"] is not None and "_id" in e and "_meta" in e:
            groups.setdefault((e["_id"][0], e["sha256"], e["_id"][2]), []).append(e)
    rows, freed, linked = [], 0, 0
    for group in groups.values():
        canon = canonical_of(group)
        for e in group:
            if e["_id"][1] == canon["_id"][1]:
                continue  # a name of the canonical inode already
            try:
                freed += link_duplicate(top, e, canon)
            except Skip as s:
                rows.append(("skipped", str(s), e["path"]))
                continue
            except OSError as x:  # a fault no check foresaw: this name is left, the run goes on
                rows.append(("skipped", "could not be linked (%s)." % x.strerror, e["path"]))
                continue
            linked += 1
            rows.append(("linked", e["_id"][2], e["path"], canon["path"]))
            e["_id"], e["_meta"] = list(canon["_id"]), canon["_meta"]
    rows.append(("saved", freed, linked))
    return rows


def canonical_of(group):
    """The entry naming the canonical inode: the inode with the most links (replacing its names
    would free nothing), then the oldest, then the one whose first name sorts first."""
    return min(group, key=lambda e: (-e["_meta"][3], e["_id"][3], os.fsencode(e["path"])))


def link_duplicate(top, dup, canon):
    """Replaces dup's name by a link to canon's inode after checking both again. Returns the
    bytes freed (dup's size when that was its file's last name); raises Skip when it keeps its
    file."""
    fds = []
    try:
        dir_fd, name = open_parent(top, dup["path"], fds)
        canon_dir, canon_name = open_parent(top, canon["path"], fds)
        fd, st = open_again(dir_fd, name, dup["_id"], "it", fds)
        canon_fd, canon_st = open_again(canon_dir, canon_name, canon["_id"], "the canonical file", fds)
        if (st.st_uid, st.st_gid, st.st_mode) != (canon_st.st_uid, canon_st.st_gid, canon_st.st_mode):
            raise Skip("its owner or mode (%s) is not the canonical file's (%s): not linked."
                       % (owner_mode(st), owner_mode(canon_st)))
        same_bytes(fd, canon_fd, st.st_size)
        if identity(os.fstat(fd)) != dup["_id"] or identity(os.fstat(canon_fd)) != canon["_id"]:
            raise Skip("changed while it was compared: not linked.")
        return replace_name(dir_fd, name, fd, dup["_id"], canon_dir, canon_name, canon_fd, canon["_id"])
    finally:
        for fd in fds:
            os.close(fd)


def owner_mode(st):
    return "%d:%d %04o" % (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


def open_parent(top, path, fds):
    """(fd of the folder holding PATH, its last name as bytes): each folder opened below top as
    the walk opens it (O_NOFOLLOW|O_DIRECTORY), so a folder that became a link is never
    entered. The fd goes into fds, for the caller to close."""
    *folders, name = os.fsencode(path).split(b"/")
    fd = os.dup(top)
    fds.append(fd)
    for folder in folders:
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as e:
            raise Skip("a folder on its path could not be opened without following a link (%s)."
                       % e.strerror)
        fds.append(fd)
    return fd, name


def open_again(dir_fd, name, seen, what, fds):
    """(fd, fstat) of NAME opened as the walk opens files, when it is still the file hashed
    (same device, inode, size and mtime)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        raise Skip("%s could not be opened again (%s)." % (what, e.strerror))
    fds.append(fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or identity(st) != seen:
        raise Skip("%s changed since it was hashed: not linked." % what)
    return fd, st


def same_bytes(fd, other, size):
    """Both fds' first SIZE bytes compared, chunk by chunk; Skip at the first difference."""
    at = 0
    while at < size:
        n = min(HASH_CHUNK, size - at)
        a, b = pread(fd, n, at), pread(other, n, at)
        if a != b or not a:
            raise Skip("its bytes are not the canonical file's: not linked.")
        at += len(a)


def replace_name(dir_fd, name, fd, seen, canon_dir, canon_name, canon_fd, canon_seen):
    """NAME (in dir_fd; its file open as fd, as it was compared: seen) becomes a link to the
    canonical file (canon_name in canon_dir, open as canon_fd, as compared: canon_seen).
    NAME's file first gets a backup name beside it, so its bytes keep a name throughout; the
    canonical gets a temp name there, renamed over NAME (atomic: NAME never goes missing).
    Then, if either file was written since the compare (a writer holding it open), the backup
    goes back over NAME: nothing lost. Returns the bytes freed (NAME's old file's size when
    NAME was its last name); raises Skip when NAME keeps its own file."""
    backup = link_beside(dir_fd, name, dir_fd, seen, "it")
    try:
        temp = link_beside(canon_dir, canon_name, dir_fd, canon_seen, "the canonical file")
    except Skip:
        unlink_quietly(dir_fd, backup)
        raise
    try:
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as e:
        unlink_quietly(dir_fd, temp)
        unlink_quietly(dir_fd, backup)
        raise Skip("could not be replaced (%s): not linked." % e.strerror)
    if identity(os.fstat(fd)) != seen or identity(os.fstat(canon_fd)) != canon_seen:
        try:
            os.rename(backup, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as e:
            raise Skip("was written to while it was linked, and its own file could not be put back "
                       "(%s): it is kept beside it as %s." % (e.strerror, escape(backup)))
        raise Skip("was written to while it was linked: its own file is back under its name.")
    unlink_quietly(dir_fd, backup)
    return seen[2] if os.fstat(fd).st_nlink == 0 else 0


def link_beside(src_dir, src_name, dir_fd, seen, what):
    """A new random name in dir_fd for the file src_name names (the link itself, never what a
    link points at), when that is still the file seen; returns the name (bytes)."""
    new = (DEDUPE_PREFIX + secrets.token_hex(8)).encode("ascii")
    try:
        os.link(src_name, new, src_dir_fd=src_dir, dst_dir_fd=dir_fd, follow_symlinks=False)
    except OSError as e:
        raise Skip("%s could not be linked (%s): not linked." % (what, e.strerror))
    st = os.stat(new, dir_fd=dir_fd, follow_symlinks=False)
    if [st.st_dev, st.st_ino] != list(seen[:2]):
        unlink_quietly(dir_fd, new)
        raise Skip("%s was replaced while it was being linked: not linked." % what)
    return new


def unlink_quietly(dir_fd, name):
    """Removes a name this tool made; one line on stderr when it cannot (the file keeps it)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError as e:
        print("catalog.py: the name %s it made could not be removed (%s)." % (escape(name), e.strerror),
              file=sys.stderr)


# ---- output ----------------------------------------------------------------------------------

# Characters written as \xHH of each UTF-8 byte although well formed: they break a line or
# reorder what a terminal shows (as escape_line in components/shell/prelude.sh has them).
BIDI = frozenset([0x200E, 0x200F, *range(0x2028, 0x202F), *range(0x2066, 0x206A)])
SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(raw):
    """Bytes as one line a terminal shows as it is, byte for byte what the shell's escape_line
    makes: undecodable bytes (surrogateescape's U+DC80-DCFF), C0 and C1 controls, DEL and the
    BIDI characters as \\xHH per byte; backslash, LF, tab and CR as \\\\ \\n \\t \\r."""
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        c = ord(ch)
        if ch in SHORT_ESCAPES:
            out.append(SHORT_ESCAPES[ch])
        elif 0xDC80 <= c <= 0xDCFF:
            out.append("\\x%02x" % (c - 0xDC00))
        elif c < 0x20 or 0x7F <= c <= 0x9F or c in BIDI:
            out.append("".join("\\x%02x" % b for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def to_bytes(text):
    """A path or reason back to bytes: undecodable name bytes as they were, any other lone
    surrogate (never in a name) as its 3 bytes, which escape() then shows byte by byte."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def shown(path):
    return escape(to_bytes(path))


def json_lines(entries, counts, dedupe_rows=()):
    lines = [json.dumps({k: v for k, v in e.items() if not k.startswith("_")},
                        ensure_ascii=True, sort_keys=True) for e in entries]
    lines += dedupe_json(dedupe_rows)
    lines.append(json.dumps(dict(METER, summary=counts), ensure_ascii=True, sort_keys=True))
    return lines


def one_field(text):
    """Escaped, with its spaces as \\x20 so it stays one field; - when empty."""
    return escape(to_bytes(text)).replace(" ", "\\x20") or "-"


def framed_lines(entries, frame, top, dedupe_rows=()):
    """One line per entry for a reader that takes only lines starting with its FRAME:
    `FRAME report: model SIZE FORMAT STATUS SHA CHANGED REASON PATH` (SHA, CHANGED: hex or -;
    REASON escaped with its spaces as \\x20 so it stays one field, - when empty; PATH escaped,
    last, spaces kept), then `FRAME report: catalog READ_BYTES HASHED_FILES DIR`; with --dedupe
    then `FRAME report: dedupe linked SIZE PATH CANONICAL`, `... dedupe skipped REASON PATH`
    (both paths one field each, like REASON) and `... dedupe saved BYTES NAMES`."""
    lead = frame + " report: " if frame else "report: "
    lines = []
    for e in entries:
        fields = ["model", str(e["size"]), e["format"], e["status"], e["sha256"] or "-",
                  e["changed_from"] or "-", one_field(e["reason"]), shown(e["path"])]
        lines.append(lead + " ".join(fields))
    lines.append(lead + "catalog %d %d %s" % (METER["read_bytes"], METER["hashed_files"], shown(top)))
    for row in dedupe_rows:
        kind, rest = row[0], [str(v) if isinstance(v, int) else one_field(v) for v in row[1:]]
        lines.append(lead + " ".join(["dedupe", kind] + rest))
    return lines


def dedupe_json(rows):
    """--dedupe's rows as JSON lines, for the output without --frame."""
    names = {"linked": ("size", "path", "canonical"), "skipped": ("reason", "path"),
             "saved": ("bytes", "names")}
    return [json.dumps(dict(zip(names[r[0]], r[1:]), dedupe=r[0]), ensure_ascii=True, sort_keys=True)
            for r in rows]


# ---- the command line ------------------------------------------------------------------------

USAGE = ("usage: catalog.py [--stable-seconds N] [--now EPOCH] [--index FILE [--no-write]]"
         " [--dedupe] [--frame FRAME] DIR")


def parse_args(argv):
    opts = {"stable": 60.0, "now": None, "index": None, "no_write": False, "frame": None,
            "dedupe": False}
    rest = list(argv)
    while rest and rest[0] in ("--stable-seconds", "--now", "--index", "--frame", "--no-write", "--dedupe"):
        flag = rest.pop(0)
        if flag in ("--no-write", "--dedupe"):
            opts[flag[2:].replace("-", "_")] = True
        elif not rest:
            raise Refusal("%s needs a value." % flag)
        elif flag in ("--index", "--frame"):
            opts[flag[2:]] = rest.pop(0)
        else:
            try:
                opts["stable" if flag == "--stable-seconds" else "now"] = float(rest.pop(0))
            except ValueError:
                raise Refusal("%s needs a number." % flag)
    if len(rest) != 1 or rest[0].startswith("--"):
        raise Refusal(USAGE)
    frame = opts["frame"]
    if frame is not None and not (len(frame) in (0, 32) and all(c in "0123456789abcdef" for c in frame)):
        raise Refusal("--frame needs 32 lowercase hex digits, or the empty string.")
    if opts["index"] is not None and os.path.basename(opts["index"]) in ("", ".", ".."):
        raise Refusal("--index needs a file name.")
    if opts["no_write"] and opts["index"] is None:
        raise Refusal("--no-write needs --index.")
    # It links files and updates the index: with the index's lock, so two runs never interleave.
    if opts["dedupe"] and opts["no_write"]:
        raise Refusal("--dedupe replaces names and updates the index: it cannot run with --no-write.")
    if opts["dedupe"] and opts["index"] is None:
        raise Refusal("--dedupe needs --index (its lock keeps two runs apart; it updates it).")
    opts["dir"] = rest[0]
    if opts["now"] is None:
        opts["now"] = time.time()
    opts["old"] = opts["reusable"] = {}  # no index: nothing to reuse or compare with
    return opts


def run(argv):
    """The report's lines; Refusal ends the run before anything is printed."""
    opts = parse_args(argv)
    index_fd = open_index(opts) if opts["index"] is not None else None
    top, rows = None, ()
    try:
        top = open_top(opts)
        out = sorted(walk_top(top, opts), key=lambda e: os.fsencode(e["path"]))
        add_history(out, opts["old"], int(opts["now"]))
        if opts["dedupe"]:
            rows = dedupe(top, out)
        if index_fd is not None and not opts["no_write"]:
            write_index(index_fd, opts, out)
    finally:
        if top is not None:
            os.close(top)
        if index_fd is not None:
            os.close(index_fd)  # releases the lock
    if opts["frame"] is not None:
        return framed_lines(out, opts["frame"], opts["dir"], rows)
    counts = dict.fromkeys(STATUSES, 0)
    for entry in out:
        counts[entry["status"]] += 1
    return json_lines(out, counts, rows)


def main(argv):
    try:
        lines = run(argv)
    except Refusal as e:
        print(e if str(e).startswith("usage:") else "catalog.py: %s" % e, file=sys.stderr)
        return 2
    # Bytes, not print: the output is UTF-8 whatever the locale says.
    sys.stdout.buffer.write("".join(line + "\n" for line in lines).encode("utf-8"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
