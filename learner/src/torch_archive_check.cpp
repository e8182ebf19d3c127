// Checks a torch archive before libtorch parses it (why and what: torch_archive_check.hpp).
// Zip layout: APPNOTE.TXT 4.3 (local header, central directory, end records, zip64 extra 0x0001).
// Pickle opcodes: CPython's Lib/pickletools.py (protocols 0-5); libtorch's unpickler reads a
// subset of them, so a pickle that uses an opcode it does not know is refused here as well.
#include "torch_archive_check.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <zlib.h>

namespace faceadapt::learner::detail {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("torch archive: " + what); }

uint64_t le(std::string_view b, std::size_t at, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
    return v;
}

bool has_sig(std::string_view b, uint64_t at, uint32_t sig) {
    return at <= b.size() && b.size() - at >= 4 && le(b, static_cast<std::size_t>(at), 4) == sig;
}

// Printable ASCII only; what a record name shows in an error.
std::string shown(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7F) ? c : '?';
    return out;
}

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr std::size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kLocatorSize = 20, kEnd64Size = 56;
constexpr std::size_t kMaxNameBytes = 1024;

struct Records {
    std::map<std::string, std::string_view, std::less<>> data;  // name -> bytes (inflated if compressed)
    std::vector<std::unique_ptr<std::string>> inflated;         // what compressed records' views point into
};

// libtorch compresses its code records (deflate); their size is bounded here because its zip
// reader allocates the declared size before inflating. Deflate expands at most ~1032:1.
constexpr uint64_t kMaxInflatedBytes = 16u << 20;

std::string inflate_record(std::string_view name, std::string_view deflated, uint64_t size) {
    if (size > kMaxInflatedBytes || size > deflated.size() * 1032 + 64)
        fail("record '" + shown(name) + "': compressed to " + std::to_string(deflated.size()) + " bytes, claims " +
             std::to_string(size));
    std::string out(static_cast<std::size_t>(size), '\0');
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail("zlib inflateInit2 failed");
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(deflated.data()));
    zs.avail_in = static_cast<uInt>(deflated.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&zs, Z_FINISH);
    const auto produced = zs.total_out;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || produced != size) fail("record '" + shown(name) + "': deflate data is damaged or of another size");
    return out;
}

// ---- zip ---------------------------------------------------------------------------------------

Records read_zip(std::string_view z) {
    if (z.size() < kEndSize) fail("too short for a zip archive");
    // The end record: torch writes no archive comment, but one is allowed if it ends the buffer.
    std::size_t end = std::string_view::npos;
    const std::size_t lowest = z.size() >= kEndSize + 0xFFFF ? z.size() - kEndSize - 0xFFFF : 0;
    for (std::size_t at = z.size() - kEndSize + 1; at-- > lowest;) {
        if (has_sig(z, at, kEndSig) && at + kEndSize + le(z, at + 20, 2) == z.size()) {
            end = at;
            break;
        }
    }
    if (end == std::string_view::npos) fail("no zip end-of-central-directory record");
    if (le(z, end + 4, 2) != 0 || le(z, end + 6, 2) != 0) fail("multi-disk zip archive");
    uint64_t count = le(z, end + 10, 2), cd_size = le(z, end + 12, 4), cd_offset = le(z, end + 16, 4);
    uint64_t cd_limit = end;  // the central directory ends before the end records
    if (end >= kLocatorSize && has_sig(z, end - kLocatorSize, kLocator64Sig)) {
        const uint64_t at = le(z, end - kLocatorSize + 8, 8);
        if (at > end - kLocatorSize || end - kLocatorSize - at < kEnd64Size || !has_sig(z, at, kEnd64Sig))
            fail("zip64 end record outside the archive");
        const auto p = static_cast<std::size_t>(at);
        if (le(z, p + 16, 4) != 0 || le(z, p + 20, 4) != 0) fail("multi-disk zip archive");
        count = le(z, p + 32, 8);
        cd_size = le(z, p + 40, 8);
        cd_offset = le(z, p + 48, 8);
        cd_limit = at;
    }
    if (count > kMaxArchiveRecords) fail(std::to_string(count) + " records (at most " + std::to_string(kMaxArchiveRecords) + ")");
    if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) fail("central directory outside the archive");
    if (cd_size < count * kCentralSize) fail("central directory too short for its record count");

    Records out;
    std::size_t p = static_cast<std::size_t>(cd_offset);
    const std::size_t cd_end = static_cast<std::size_t>(cd_offset + cd_size);
    for (uint64_t i = 0; i < count; ++i) {
        if (cd_end - p < kCentralSize || !has_sig(z, p, kCentralSig)) fail("central directory entry " + std::to_string(i) + " is damaged");
        const uint64_t flags = le(z, p + 8, 2), method = le(z, p + 10, 2);
        uint64_t comp = le(z, p + 20, 4), size = le(z, p + 24, 4), offset = le(z, p + 42, 4);
        const std::size_t n = le(z, p + 28, 2), extra = le(z, p + 30, 2), comment = le(z, p + 32, 2);
        if (cd_end - p - kCentralSize < n + extra + comment) fail("central directory entry " + std::to_string(i) + " overruns");
        const std::string_view name = z.substr(p + kCentralSize, n);
        if (n == 0 || n > kMaxNameBytes || name.find('\0') != std::string_view::npos)
            fail("record name of " + std::to_string(n) + " bytes");
        if (le(z, p + 34, 2) != 0) fail("record '" + shown(name) + "' on another disk");
        if (flags & 0x41) fail("record '" + shown(name) + "' is encrypted");
        if (method != 0 && method != 8) fail("record '" + shown(name) + "': compression method " + std::to_string(method));
        // zip64 extra field: the 64-bit values of the fields that read 0xFFFFFFFF, in this order.
        if (size == 0xFFFFFFFF || comp == 0xFFFFFFFF || offset == 0xFFFFFFFF) {
            std::string_view ex = z.substr(p + kCentralSize + n, extra);
            bool found = false;
            while (ex.size() >= 4) {
                const auto id = le(ex, 0, 2), len = le(ex, 2, 2);
                if (ex.size() - 4 < len) break;
                if (id == 0x0001) {
                    std::size_t q = 4;
                    for (uint64_t* f : {&size, &comp, &offset}) {
                        if (*f != 0xFFFFFFFF) continue;
                        if (q + 8 > 4 + len) fail("record '" + shown(name) + "': short zip64 field");
                        *f = le(ex, q, 8);
                        q += 8;
                    }
                    found = true;
                    break;
                }
                ex.remove_prefix(4 + len);
            }
            if (!found) fail("record '" + shown(name) + "': zip64 sizes without a zip64 field");
        }
        if (method == 0 && comp != size)
            fail("record '" + shown(name) + "': stored size " + std::to_string(comp) + " != size " + std::to_string(size));
        // Its local header and data lie before the central directory.
        if (offset > cd_offset || cd_offset - offset < kLocalSize || !has_sig(z, offset, kLocalSig))
            fail("record '" + shown(name) + "': local header outside the archive");
        const auto lp = static_cast<std::size_t>(offset);
        if (le(z, lp + 8, 2) != method) fail("record '" + shown(name) + "': local header disagrees");
        const std::size_t ln = le(z, lp + 26, 2), lextra = le(z, lp + 28, 2);
        const uint64_t data = offset + kLocalSize + ln + lextra;
        if (data > cd_offset || comp > cd_offset - data) fail("record '" + shown(name) + "': data outside the archive");
        if (z.substr(lp + kLocalSize, ln) != name) fail("record '" + shown(name) + "': local header names another record");
        std::string_view bytes = z.substr(static_cast<std::size_t>(data), static_cast<std::size_t>(comp));
        if (method == 8) {
            out.inflated.push_back(std::make_unique<std::string>(inflate_record(name, bytes, size)));
            bytes = *out.inflated.back();
        }
        if (!out.data.emplace(std::string(name), bytes).second) fail("record '" + shown(name) + "' twice");
        p += kCentralSize + n + extra + comment;
    }
    return out;
}

// ---- pickles -----------------------------------------------------------------------------------

// What the walk needs to know of a value: the parts of a tensor storage reference.
struct Value {
    enum Kind { kOther, kString, kInt, kGlobal, kTuple } kind = kOther;
    std::string text;  // kString, kGlobal ("module.name")
    int64_t number = 0;
    std::vector<std::shared_ptr<const Value>> items;  // kTuple
};
using ValuePtr = std::shared_ptr<const Value>;

ValuePtr make(Value::Kind k, std::string text = {}, int64_t number = 0) {
    auto v = std::make_shared<Value>();
    v->kind = k;
    v->text = std::move(text);
    v->number = number;
    return v;
}

std::size_t storage_item_size(const std::string& global) {
    static const std::map<std::string, std::size_t, std::less<>> sizes = {
        {"torch.FloatStorage", 4},   {"torch.DoubleStorage", 8}, {"torch.HalfStorage", 2},
        {"torch.BFloat16Storage", 2}, {"torch.LongStorage", 8},  {"torch.IntStorage", 4},
        {"torch.ShortStorage", 2},   {"torch.CharStorage", 1},   {"torch.ByteStorage", 1},
        {"torch.BoolStorage", 1},    {"torch.ComplexFloatStorage", 8}, {"torch.ComplexDoubleStorage", 16},
        {"torch.QInt8Storage", 1},   {"torch.QUInt8Storage", 1}, {"torch.QInt32Storage", 4}};
    const auto it = sizes.find(global);
    return it == sizes.end() ? 0 : it->second;
}

class PickleWalk {
public:
    PickleWalk(const Records& records, const std::string& name, std::string_view bytes)
        : records_(records), name_(name), b_(bytes) {
        // libtorch reads the tensors of "<dir>/data.pkl" from "<dir>/data/<key>".
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".pkl") == 0)
            tensor_dir_ = name.substr(0, name.size() - 4) + "/";
    }

    void run() {
        for (;;) {
            if (pos_ >= b_.size()) bad("ends without STOP");
            const auto op = static_cast<unsigned char>(b_[pos_++]);
            if (op == '.') return;  // STOP
            step(op);
        }
    }

private:
    [[noreturn]] void bad(const std::string& what) const {
        fail("pickle '" + shown(name_) + "' at byte " + std::to_string(pos_) + ": " + what);
    }
    std::string_view take(uint64_t n) {
        if (n > b_.size() - pos_) bad("an argument of " + std::to_string(n) + " bytes runs past the record");
        const auto s = b_.substr(pos_, static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }
    uint64_t arg(int n) { return le(take(static_cast<uint64_t>(n)), 0, n); }
    std::string_view line() {
        const auto nl = b_.find('\n', pos_);
        if (nl == std::string_view::npos) bad("a text argument without a newline");
        const std::size_t n = nl - pos_;
        return take(n + 1).substr(0, n);
    }
    void push(ValuePtr v) { stack_.push_back(std::move(v)); }
    ValuePtr pop() {
        if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad("pops an empty stack");
        auto v = std::move(stack_.back());
        stack_.pop_back();
        return v;
    }
    std::vector<ValuePtr> pop_to_mark() {
        if (marks_.empty()) bad("no MARK");
        std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
        stack_.resize(marks_.back());
        marks_.pop_back();
        return items;
    }
    void tuple(std::vector<ValuePtr> items) {
        auto t = std::make_shared<Value>();
        t->kind = Value::kTuple;
        t->items = std::move(items);
        push(std::move(t));
    }
    void memo_put(uint64_t id) {
        if (stack_.empty()) bad("memoizes an empty stack");
        if (id > memo_.size()) bad("memo index " + std::to_string(id) + " skips ahead of " + std::to_string(memo_.size()));
        if (id == memo_.size()) memo_.push_back(stack_.back());
        else memo_[static_cast<std::size_t>(id)] = stack_.back();
    }
    void memo_get(uint64_t id) {
        if (id >= memo_.size()) bad("memo index " + std::to_string(id) + " was never stored");
        push(memo_[static_cast<std::size_t>(id)]);
    }
    // ('storage', torch.<T>Storage, key, device, numel): the record must hold numel elements.
    void persistent_id(const ValuePtr& id) {
        const auto& it = id->items;
        if (id->kind != Value::kTuple || it.size() != 5 || it[0]->kind != Value::kString || it[0]->text != "storage" ||
            it[1]->kind != Value::kGlobal || it[2]->kind != Value::kString || it[3]->kind != Value::kString ||
            it[4]->kind != Value::kInt)
            bad("a persistent id that is not a tensor storage reference");
        const std::size_t item = storage_item_size(it[1]->text);
        if (item == 0) bad("unknown storage type '" + shown(it[1]->text) + "'");
        if (tensor_dir_.empty()) bad("a tensor storage in a pickle that holds none");
        const auto rec = records_.data.find(tensor_dir_ + it[2]->text);
        const int64_t numel = it[4]->number;
        if (numel < 0) bad("negative storage size");
        if (numel == 0) return;  // libtorch reads no record for an empty storage
        if (rec == records_.data.end()) bad("storage '" + shown(it[2]->text) + "' has no record");
        if (static_cast<uint64_t>(numel) > rec->second.size() / item)
            bad("storage '" + shown(it[2]->text) + "' claims " + std::to_string(numel) + " elements, its record holds " +
                std::to_string(rec->second.size()) + " bytes");
    }

    void step(unsigned char op) {
        using K = Value::Kind;
        switch (op) {
            case '(': marks_.push_back(stack_.size()); break;                     // MARK
            case '0': (void)pop(); break;                                        // POP
            case '1': (void)pop_to_mark(); break;                                // POP_MARK
            case '2': { auto v = pop(); push(v); push(v); break; }               // DUP
            case 'N': case 0x88: case 0x89: push(make(K::kOther)); break;        // NONE NEWTRUE NEWFALSE
            case 'K': push(make(K::kInt, {}, static_cast<int64_t>(arg(1)))); break;                         // BININT1
            case 'M': push(make(K::kInt, {}, static_cast<int64_t>(arg(2)))); break;                         // BININT2
            case 'J': push(make(K::kInt, {}, static_cast<int32_t>(static_cast<uint32_t>(arg(4))))); break;  // BININT
            case 0x8a: {                                                                                    // LONG1
                const auto n = arg(1);
                const auto digits = take(n);
                if (n == 0 || n > 8) { push(make(K::kOther)); break; }
                uint64_t v = le(digits, 0, static_cast<int>(n));
                if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign
                push(make(K::kInt, {}, static_cast<int64_t>(v)));
                break;
            }
            case 0x8b: (void)take(arg(4)); push(make(K::kOther)); break;         // LONG4
            case 'G': (void)take(8); push(make(K::kOther)); break;               // BINFLOAT
            case 'X': case 'T': case 'B': push(make(K::kString, std::string(take(arg(4))))); break;  // BINUNICODE BINSTRING BINBYTES
            case 'U': case 'C': case 0x8c: push(make(K::kString, std::string(take(arg(1))))); break;  // SHORT_BINSTRING SHORT_BINBYTES SHORT_BINUNICODE
            case 0x8d: case 0x8e: case 0x96: push(make(K::kString, std::string(take(arg(8))))); break;  // BINUNICODE8 BINBYTES8 BYTEARRAY8
            case ')': tuple({}); break;                                          // EMPTY_TUPLE
            case 't': tuple(pop_to_mark()); break;                               // TUPLE
            case 0x85: case 0x86: case 0x87: {                                   // TUPLE1..3
                std::vector<ValuePtr> items(op - 0x84);
                for (auto i = items.size(); i-- > 0;) items[i] = pop();
                tuple(std::move(items));
                break;
            }
            case ']': case '}': case 0x8f: push(make(K::kOther)); break;         // EMPTY_LIST EMPTY_DICT EMPTY_SET
            case 'l': case 'd': (void)pop_to_mark(); push(make(K::kOther)); break;  // LIST DICT
            case 'a': (void)pop(); if (stack_.empty()) bad("APPEND without a list"); break;
            case 'e': case 'u': case 0x90:                                       // APPENDS SETITEMS ADDITEMS
                (void)pop_to_mark();
                if (stack_.empty()) bad("adds to nothing");
                break;
            case 's': (void)pop(); (void)pop(); if (stack_.empty()) bad("SETITEM without a dict"); break;
            case 'c': {                                                          // GLOBAL
                std::string g(line());
                g += '.';
                g += line();
                push(make(K::kGlobal, std::move(g)));
                break;
            }
            case 0x93: {                                                         // STACK_GLOBAL
                const auto n = pop(), m = pop();
                if (m->kind != K::kString || n->kind != K::kString) bad("STACK_GLOBAL of non-strings");
                push(make(K::kGlobal, m->text + "." + n->text));
                break;
            }
            case 'R': case 0x81: (void)pop(); (void)pop(); push(make(K::kOther)); break;  // REDUCE NEWOBJ
            case 'b': (void)pop(); if (stack_.empty()) bad("BUILD without an object"); break;
            case 'Q': persistent_id(pop()); push(make(K::kOther)); break;       // BINPERSID
            case 'q': memo_put(arg(1)); break;                                   // BINPUT
            case 'r': memo_put(arg(4)); break;                                   // LONG_BINPUT
            case 0x94: memo_put(memo_.size()); break;                            // MEMOIZE
            case 'h': memo_get(arg(1)); break;                                   // BINGET
            case 'j': memo_get(arg(4)); break;                                   // LONG_BINGET
            case 0x80: (void)arg(1); break;                                      // PROTO
            case 0x95: (void)arg(8); break;                                      // FRAME (a hint only)
            default: bad("opcode " + std::to_string(op) + " is not one libtorch's reader takes");
        }
    }

    const Records& records_;
    const std::string& name_;
    std::string_view b_;
    std::size_t pos_ = 0;
    std::string tensor_dir_;
    std::vector<ValuePtr> stack_;
    std::vector<std::size_t> marks_;
    std::vector<ValuePtr> memo_;
};

// ---- code --------------------------------------------------------------------------------------

// A TorchScript identifier or a dotted name.
bool is_name(std::string_view s) {
    if (s.empty() || s.size() > 256) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!(alpha || (i > 0 && ((c >= '0' && c <= '9') || c == '.')))) return false;
    }
    return true;
}

// Consumes a double-quoted string without escapes from the front of `s`.
bool eat_quoted(std::string_view& s) {
    if (s.empty() || s[0] != '"') return false;
    for (std::size_t i = 1; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '"') {
            s.remove_prefix(i + 1);
            return true;
        }
        if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
    }
    return false;
}

bool eat(std::string_view& s, std::string_view word) {
    if (s.substr(0, word.size()) != word) return false;
    s.remove_prefix(word.size());
    return true;
}

// `[` ( "name" `, ` )* `]`
bool is_name_list(std::string_view s) {
    if (!eat(s, "[")) return false;
    while (!s.empty() && s[0] == '"')
        if (!eat_quoted(s) || !eat(s, ", ")) return false;
    return s == "]";
}

// An attribute's type: a name (Tensor, float, a submodule's class), or a flat tuple of names as
// an optimiser's options write them (`betas : Tuple[float, float]`, torch::optim::Adam).
bool is_type(std::string_view s) {
    if (!eat(s, "Tuple[")) return is_name(s);
    if (s.empty() || s.back() != ']') return false;
    s.remove_suffix(1);
    for (int items = 0; items < 16; ++items) {
        const auto comma = s.find(", ");
        if (!is_name(s.substr(0, comma))) return false;
        if (comma == std::string_view::npos) return true;
        s.remove_prefix(comma + 2);
    }
    return false;
}

bool is_body_line(std::string_view l) {
    if (!eat(l, "  ")) return false;
    if (eat(l, "__parameters__ = ") || eat(l, "__buffers__ = ")) return is_name_list(l);
    if (eat(l, "__annotations__")) {
        if (l == " = []") return true;
        return eat(l, "[") && eat_quoted(l) && eat(l, "] = ") && is_name(l);
    }
    const auto colon = l.find(" : ");
    return colon != std::string_view::npos && is_name(l.substr(0, colon)) && is_type(l.substr(colon + 3));
}

void check_code(const std::string& name, std::string_view text) {
    std::size_t number = 0;
    bool in_class = false;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const std::string_view l = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++number;
        std::string_view rest = l;
        bool ok = l.empty();
        if (!ok && eat(rest, "class ")) {
            const auto paren = rest.find('(');
            ok = paren != std::string_view::npos && is_name(rest.substr(0, paren)) && rest.substr(paren) == "(Module):";
            in_class = ok;
        } else if (!ok) {
            ok = in_class && is_body_line(l);
        }
        if (!ok) fail("code '" + shown(name) + "' line " + std::to_string(number) + " is not what a parameter archive holds");
    }
}

bool ends_with(const std::string& s, std::string_view tail) {
    return s.size() >= tail.size() && std::string_view(s).substr(s.size() - tail.size()) == tail;
}

}  // namespace

void check_torch_archive(std::string_view zip) {
    const Records records = read_zip(zip);
    for (const auto& [name, bytes] : records.data)
        if (ends_with(name, ".pkl") || ends_with(name, "_pkl")) PickleWalk(records, name, bytes).run();
    for (const auto& [name, bytes] : records.data)
        if (ends_with(name, ".py")) check_code(name, bytes);
}

}  // namespace faceadapt::learner::detail
